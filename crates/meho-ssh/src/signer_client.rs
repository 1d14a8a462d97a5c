//! How the broker reaches the signer: in-process ([`LocalSigner`]) or over mutual TLS
//! ([`RemoteSigner`]). The broker holds one `Arc<dyn SignerClient>` and cannot tell the
//! difference; only the remote one keeps the CA keys out of the broker's address space.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::signer::{SignError, Signer};
use crate::wire::{ErrorBody, HostView, HostsResponse, Intent, SignResponse};

/// A boxed, sendable future (the trait is used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error from the signer, keeping the signer's own code when it gave one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SignerFailure {
    /// `forbidden`, `unknown_host`, `bad_request`, `internal`, or `unreachable`.
    pub code: String,
    /// The sentence to show.
    pub message: String,
}

impl From<SignError> for SignerFailure {
    fn from(err: SignError) -> Self {
        SignerFailure {
            code: err.code().to_owned(),
            message: err.to_string(),
        }
    }
}

/// The broker's view of a signer.
pub trait SignerClient: Send + Sync + std::fmt::Debug {
    /// `POST /v1/sign`.
    fn sign<'a>(&'a self, intent: &'a Intent)
    -> BoxFuture<'a, Result<SignResponse, SignerFailure>>;
    /// `GET /v1/hosts` for `agent` (see [`Intent::agent`]) in `tenant`, and the human's groups.
    fn hosts<'a>(
        &'a self,
        agent: Option<&'a str>,
        tenant: Option<&'a str>,
        end_user_groups: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<HostView>, SignerFailure>>;
}

/// The signer in this process. It trusts the frontend in its own process, so the caller it
/// decides for is the intent's `agent` (the authenticated principal), or `caller` when none is
/// given.
#[derive(Debug, Clone)]
pub struct LocalSigner {
    signer: Arc<Signer>,
    caller: String,
}

impl LocalSigner {
    /// Calls `signer` as `caller`.
    pub fn new(signer: Arc<Signer>, caller: impl Into<String>) -> Self {
        LocalSigner {
            signer,
            caller: caller.into(),
        }
    }
}

impl SignerClient for LocalSigner {
    fn sign<'a>(
        &'a self,
        intent: &'a Intent,
    ) -> BoxFuture<'a, Result<SignResponse, SignerFailure>> {
        Box::pin(async move {
            let principal = intent.principal.as_deref().unwrap_or(&self.caller);
            Ok(self.signer.sign(principal, intent).await?)
        })
    }

    fn hosts<'a>(
        &'a self,
        agent: Option<&'a str>,
        tenant: Option<&'a str>,
        end_user_groups: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<HostView>, SignerFailure>> {
        Box::pin(async move {
            let caller = agent.unwrap_or(&self.caller);
            Ok(self.signer.hosts(caller, tenant, end_user_groups))
        })
    }
}

/// A `meho signer` over mutual TLS.
#[derive(Debug, Clone)]
pub struct RemoteSigner {
    http: reqwest::Client,
    url: String,
}

impl RemoteSigner {
    /// A client presenting `cert`/`key` and trusting only `ca` for the signer's certificate.
    pub fn new(url: &str, cert: &Path, key: &Path, ca: &Path) -> Result<Self, Error> {
        let tls = crate::tls::client_config(cert, key, ca)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|err| Error::Tls(format!("signer client: {err}")))?;
        Ok(RemoteSigner {
            http,
            url: url.trim_end_matches('/').to_owned(),
        })
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SignerFailure> {
        let unreachable = |err: reqwest::Error| SignerFailure {
            code: "unreachable".into(),
            message: format!("signer at {} unreachable: {}", self.url, error_chain(&err)),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|err| SignerFailure {
                code: "internal".into(),
                message: format!("signer sent an unreadable answer: {err}"),
            });
        }
        Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(error) => SignerFailure {
                code: error.code,
                message: error.error,
            },
            Err(_) => SignerFailure {
                code: "internal".into(),
                message: format!("signer answered HTTP {status}"),
            },
        })
    }
}

/// An error with its sources, since reqwest's top-level message hides TLS causes.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl SignerClient for RemoteSigner {
    fn sign<'a>(
        &'a self,
        intent: &'a Intent,
    ) -> BoxFuture<'a, Result<SignResponse, SignerFailure>> {
        Box::pin(async move {
            self.answer(self.http.post(format!("{}/v1/sign", self.url)).json(intent))
                .await
        })
    }

    fn hosts<'a>(
        &'a self,
        // The remote signer answers for the broker's TLS identity.
        _agent: Option<&'a str>,
        tenant: Option<&'a str>,
        end_user_groups: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<HostView>, SignerFailure>> {
        Box::pin(async move {
            let mut request = self.http.get(format!("{}/v1/hosts", self.url));
            if let Some(groups) = end_user_groups {
                request = request.query(&[("groups", groups.join(","))]);
            }
            if let Some(tenant) = tenant {
                request = request.query(&[("tenant", tenant)]);
            }
            let hosts: HostsResponse = self.answer(request).await?;
            Ok(hosts.hosts)
        })
    }
}
