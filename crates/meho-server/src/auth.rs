//! The OAuth 2.1 resource server: who is calling, from a bearer token.
//!
//! A token is either the dev token (`meho serve --dev`, compared in constant time) or a JWT from
//! `[auth] issuer`. JWTs are checked locally against the issuer's JWKS (discovered from its
//! metadata, cached, refreshed on an unknown `kid`): algorithm RS256, ES256 or EdDSA with a key of
//! the matching type (never `none`, never HMAC), `iss`, `aud`, `exp`, `nbf` and `iat` with bounded
//! skew, the required scopes, and the identity claims. Every refusal is a 401 with
//! `WWW-Authenticate: Bearer resource_metadata="…"`, before anything reaches a connector.
//!
//! A JWT that passed every check is remembered ([`VerifiedTokens`], keyed by the token's sha256,
//! never the token) until its `exp`, so an agent repeating its bearer token costs one hash, not
//! a signature verification, per request; `exp` and `nbf` are judged again on every use.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use meho_config::{AuthConfig, DEFAULT_TENANT, Role};
use meho_gateway::{Caller, Tier};
use serde_json::{Value, json};

/// Tokens larger than this are refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The scope that calling tools needs.
pub const SCOPE_TOOLS: &str = "mcp:tools";
/// The scope that reading the feed needs (or `mcp:tools`).
pub const SCOPE_FEED: &str = "mcp:feed";
/// An unknown `kid` refreshes the JWKS at most this often.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(10);
/// The most verified tokens remembered at once.
pub const VERIFIED_TOKENS_MAX: usize = 4096;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The principal name (the user claim).
    pub subject: String,
    /// The tenant.
    pub tenant: String,
    /// The role in the tenant.
    pub role: Role,
    /// Groups, when the token carries them (and `[auth] groups_claim` is set).
    pub groups: Option<Vec<String>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Where the identity came from: the issuer URL, `dev` or `stdio`.
    pub source: String,
    /// The OAuth client the token was issued to, if it says.
    pub client_id: Option<String>,
    /// The identity provider's token itself (never printed), for Vault's token exchange; `None`
    /// for dev tokens and stdio.
    pub token: Option<meho_gateway::IdentityToken>,
}

impl Principal {
    /// The gateway's view of this principal.
    pub fn caller(&self) -> Caller {
        Caller {
            tenant: self.tenant.clone(),
            principal: self.subject.clone(),
            end_user: Some(self.subject.clone()),
            groups: self.groups.clone(),
            max_tier: match self.role {
                Role::ReadOnly => Tier::Read,
                Role::Operator | Role::TenantAdmin => Tier::Destructive,
            },
            approval_id: None,
            identity_token: self.token.clone(),
        }
    }

    /// Whether the principal holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The identity claims for audit records.
    pub fn audit_claims(&self) -> Value {
        json!({
            "sub": self.subject,
            "tenant": self.tenant,
            "role": self.role.as_str(),
            "groups": self.groups,
            "scopes": self.scopes,
            "source": self.source,
            "client_id": self.client_id,
        })
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("a bearer token is required")]
    Missing,
    /// Not a bearer token, or not a token at all.
    #[error("{0}")]
    InvalidRequest(String),
    /// The token is not acceptable.
    #[error("{0}")]
    InvalidToken(String),
    /// The token lacks a scope.
    #[error("the token lacks the `{0}` scope")]
    InsufficientScope(String),
    /// `[tenancy] enabled` and no tenant claim.
    #[error("the token has no `{0}` claim and tenancy is enabled")]
    MissingTenantClaim(String),
    /// The issuer could not be reached to check the token.
    #[error("cannot verify tokens right now: {0}")]
    IssuerUnavailable(String),
}

impl AuthError {
    /// The RFC 6750 `error` code (or meho's own for the tenant claim).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "unauthorized",
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::InvalidToken(_) => "invalid_token",
            AuthError::InsufficientScope(_) => "insufficient_scope",
            AuthError::MissingTenantClaim(_) => "missing_tenant_claim",
            AuthError::IssuerUnavailable(_) => "temporarily_unavailable",
        }
    }

    /// The 401 (503 when the issuer is down) with its `WWW-Authenticate` challenge.
    pub fn response(&self, resource_metadata: &str) -> Response {
        let mut challenge = format!("Bearer resource_metadata=\"{resource_metadata}\"");
        if !matches!(self, AuthError::Missing) {
            // Token contents can be quoted in the message; keep the header value valid whatever
            // they hold, so a 401 never loses its challenge.
            let description: String = self
                .to_string()
                .chars()
                .map(|c| match c {
                    '"' | '\\' => '\'',
                    ' '..='~' => c,
                    _ => '?',
                })
                .collect();
            challenge.push_str(&format!(
                ", error=\"{}\", error_description=\"{description}\"",
                match self {
                    AuthError::MissingTenantClaim(_) | AuthError::IssuerUnavailable(_) => {
                        "invalid_token"
                    }
                    other => other.code(),
                }
            ));
        }
        if let AuthError::InsufficientScope(scope) = self {
            challenge.push_str(&format!(", scope=\"{scope}\""));
        }
        let status = match self {
            AuthError::IssuerUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        let mut response = (
            status,
            axum::Json(json!({ "error": self.code(), "message": self.to_string() })),
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

struct Jwks {
    keys: JwkSet,
    fetched: Option<Instant>,
}

/// Checks bearer tokens.
pub struct Authenticator {
    config: AuthConfig,
    tenancy: bool,
    dev: Option<DevTokens>,
    http: reqwest::Client,
    jwks: tokio::sync::RwLock<Jwks>,
    verified: VerifiedTokens,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .field("dev", &self.dev.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// Makes sure rustls has a process-wide crypto provider (ring) for the HTTP client that fetches
/// issuer metadata. Installing twice is harmless.
fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Authenticator {
    /// An authenticator for `config`, accepting the dev tokens too when given.
    pub fn new(config: AuthConfig, tenancy: bool, dev: Option<DevTokens>) -> Result<Self, String> {
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| format!("cannot build the issuer HTTP client: {err}"))?;
        Ok(Authenticator {
            config,
            tenancy,
            dev,
            http,
            jwks: tokio::sync::RwLock::new(Jwks {
                keys: JwkSet { keys: Vec::new() },
                fetched: None,
            }),
            verified: VerifiedTokens::new(VERIFIED_TOKENS_MAX),
        })
    }

    /// Whether any token can be accepted at all.
    pub fn enabled(&self) -> bool {
        self.config.issuer.is_some() || self.dev.is_some()
    }

    /// The configured issuer.
    pub fn issuer(&self) -> Option<&str> {
        self.config.issuer.as_deref()
    }

    /// The principal behind the request's `Authorization` header.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(AuthError::Missing);
        };
        let value = value.to_str().map_err(|_| {
            AuthError::InvalidRequest("the Authorization header is not ASCII".into())
        })?;
        // The scheme is case-insensitive (RFC 7235).
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| {
                AuthError::InvalidRequest(
                    "the Authorization header must be `Bearer <token>`".into(),
                )
            })?
            .trim();
        self.authenticate_token(token).await
    }

    /// The principal behind `token`.
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal, AuthError> {
        if token.is_empty() {
            return Err(AuthError::InvalidRequest(
                "the bearer token is empty".into(),
            ));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken(format!(
                "the token is {} bytes, over the {MAX_TOKEN_BYTES}-byte limit",
                token.len()
            )));
        }
        if let Some(dev) = &self.dev {
            // Both comparisons always run: which one matched must not show in the timing.
            let agent = constant_time_eq(dev.agent.as_bytes(), token.as_bytes());
            let approver = constant_time_eq(dev.approver.as_bytes(), token.as_bytes());
            if agent {
                return Ok(dev_principal());
            }
            if approver {
                return Ok(dev_approver_principal());
            }
        }
        if self.config.issuer.is_none() {
            return Err(AuthError::InvalidToken(
                "unknown token (no [auth] issuer is configured; only the dev tokens are accepted)"
                    .into(),
            ));
        }
        let digest = VerifiedTokens::digest(token);
        let now = jsonwebtoken::get_current_timestamp();
        let leeway = self.config.clock_skew_seconds;
        if let Some(principal) = self.verified.get(&digest, now, leeway) {
            return Ok(principal);
        }
        let (mut principal, window) = self.verify_jwt(token).await?;
        principal.token = Some(meho_gateway::IdentityToken::new(token));
        self.verified
            .insert(digest, principal.clone(), window, now, leeway);
        Ok(principal)
    }

    /// Checks `token` in full; returns its principal and the window it is valid in.
    async fn verify_jwt(&self, token: &str) -> Result<(Principal, Validity), AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| AuthError::InvalidToken(format!("not a signed JWT: {err}")))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
        ) {
            return Err(AuthError::InvalidToken(format!(
                "algorithm {:?} is not accepted (RS256, ES256, EdDSA only)",
                header.alg
            )));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| AuthError::InvalidToken("the token has no `kid`".into()))?;
        let jwk = self.key(kid).await?;
        let key = decoding_key(&jwk, header.alg)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.config.clock_skew_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "iat"]);
        if let Some(issuer) = &self.config.issuer {
            validation.set_issuer(&[issuer.as_str(), &format!("{issuer}/")]);
        }
        if let Some(audience) = &self.config.audience {
            validation.set_audience(&[audience.as_str()]);
        }
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|err| AuthError::InvalidToken(describe_jwt_error(&err)))?;
        let claims = data.claims;
        let now = jsonwebtoken::get_current_timestamp();
        match claims.get("iat").and_then(Value::as_u64) {
            Some(iat) if iat > now + self.config.clock_skew_seconds => {
                return Err(AuthError::InvalidToken(
                    "the token is issued in the future".into(),
                ));
            }
            Some(_) => {}
            None => return Err(AuthError::InvalidToken("`iat` must be a number".into())),
        }
        // `decode` checked both; a token whose times are not plain numbers is not remembered.
        let window = Validity {
            exp: claims.get("exp").and_then(Value::as_u64),
            nbf: match claims.get("nbf") {
                None => Some(0),
                Some(nbf) => nbf.as_u64(),
            },
        };
        Ok((self.principal(&claims)?, window))
    }

    fn principal(&self, claims: &Value) -> Result<Principal, AuthError> {
        let subject = claims
            .get(&self.config.user_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                AuthError::InvalidToken(format!(
                    "the token has no `{}` claim naming the principal",
                    self.config.user_claim
                ))
            })?;
        let scopes = scopes(claims);
        for scope in &self.config.required_scopes {
            if !scopes.contains(scope) {
                return Err(AuthError::InsufficientScope(scope.clone()));
            }
        }
        let tenant = match claims.get(&self.config.tenant_claim) {
            Some(Value::String(tenant)) if meho_config::is_valid_tenant(tenant) => tenant.clone(),
            Some(Value::String(tenant)) if !tenant.is_empty() => {
                return Err(AuthError::InvalidToken(format!(
                    "tenant `{tenant}` is reserved"
                )));
            }
            Some(_) => {
                return Err(AuthError::InvalidToken(format!(
                    "the `{}` claim must be a non-empty string",
                    self.config.tenant_claim
                )));
            }
            None if self.tenancy => {
                return Err(AuthError::MissingTenantClaim(
                    self.config.tenant_claim.clone(),
                ));
            }
            None => DEFAULT_TENANT.to_owned(),
        };
        let role = match claims.get(&self.config.role_claim) {
            None => Role::Operator,
            Some(Value::String(text)) => Role::parse(text).ok_or_else(|| {
                AuthError::InvalidToken(format!(
                    "the `{}` claim `{text}` is not tenant_admin, operator or read_only",
                    self.config.role_claim
                ))
            })?,
            Some(_) => {
                return Err(AuthError::InvalidToken(format!(
                    "the `{}` claim must be a string",
                    self.config.role_claim
                )));
            }
        };
        let groups = match &self.config.groups_claim {
            None => None,
            Some(claim) => Some(
                claims
                    .get(claim)
                    .and_then(Value::as_array)
                    .map(|list| {
                        list.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    // Fail closed: a configured groups claim that is missing is an error, never
                    // "no filter".
                    .ok_or_else(|| {
                        AuthError::InvalidToken(format!("the token has no `{claim}` list"))
                    })?,
            ),
        };
        Ok(Principal {
            subject: subject.to_owned(),
            tenant,
            role,
            groups,
            scopes,
            source: self.config.issuer.clone().unwrap_or_default(),
            client_id: claims
                .get("client_id")
                .or_else(|| claims.get("azp"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            token: None,
        })
    }

    /// The JWK for `kid`, refreshing the cached set once when it is unknown.
    async fn key(&self, kid: &str) -> Result<Jwk, AuthError> {
        if let Some(key) = self.jwks.read().await.keys.find(kid) {
            return Ok(key.clone());
        }
        // One refresher at a time; whoever waited re-checks what the last one fetched.
        let mut jwks = self.jwks.write().await;
        if let Some(key) = jwks.keys.find(kid) {
            return Ok(key.clone());
        }
        let stale = jwks
            .fetched
            .is_none_or(|at| at.elapsed() >= JWKS_REFRESH_MIN);
        if stale {
            // Stamped before the fetch: while the issuer is down, one caller per interval waits
            // for it, not every request with an unknown kid.
            jwks.fetched = Some(Instant::now());
            jwks.keys = self.fetch_jwks().await?;
            if let Some(key) = jwks.keys.find(kid) {
                return Ok(key.clone());
            }
        }
        Err(AuthError::InvalidToken(format!(
            "no key `{kid}` in the issuer's JWKS"
        )))
    }

    async fn fetch_jwks(&self) -> Result<JwkSet, AuthError> {
        let issuer = self.config.issuer.as_deref().unwrap_or_default();
        let unavailable = |what: &str, err: &dyn std::fmt::Display| {
            AuthError::IssuerUnavailable(format!("{what}: {err}"))
        };
        let metadata_url = format!("{issuer}/.well-known/openid-configuration");
        let metadata: Value = self
            .http
            .get(&metadata_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| unavailable(&metadata_url, &e))?
            .json()
            .await
            .map_err(|e| unavailable(&metadata_url, &e))?;
        let advertised = metadata.get("issuer").and_then(Value::as_str).unwrap_or("");
        if advertised.trim_end_matches('/') != issuer {
            return Err(AuthError::IssuerUnavailable(format!(
                "{metadata_url} names issuer `{advertised}`, not `{issuer}`"
            )));
        }
        let jwks_uri = metadata
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                AuthError::IssuerUnavailable(format!("{metadata_url} has no jwks_uri"))
            })?;
        self.http
            .get(jwks_uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| unavailable(jwks_uri, &e))?
            .json::<JwkSet>()
            .await
            .map_err(|e| unavailable(jwks_uri, &e))
    }
}

/// When a verified token may be used: its `exp` and `nbf` (0 without one), `None` where the
/// claim is not a plain number (such a token is verified every time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Validity {
    exp: Option<u64>,
    nbf: Option<u64>,
}

/// One remembered token: its principal and the times it may be used between.
#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    exp: u64,
    nbf: u64,
}

impl Verified {
    /// The verifier's own rule (`jsonwebtoken`'s `exp` and `nbf` checks with the same leeway):
    /// a remembered token is accepted exactly when verifying it again would accept it.
    fn usable(&self, now: u64, leeway: u64) -> bool {
        self.exp >= now.saturating_sub(leeway) && self.nbf <= now.saturating_add(leeway)
    }
}

/// JWTs that passed every check, by the sha256 of the token, until they expire: a bounded map,
/// so a caller cycling through tokens costs memory up to [`VERIFIED_TOKENS_MAX`] entries and no
/// more. Only successes are remembered; a refused token is checked in full every time.
#[derive(Debug)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Verified>>,
    capacity: usize,
}

impl VerifiedTokens {
    /// An empty cache holding at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        VerifiedTokens {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The key of `token`: its sha256, so the cache never holds a usable credential.
    pub fn digest(token: &str) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Verified>> {
        // The map is consistent after any panic (every change is one insert or removal).
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The principal of a remembered token, if it is usable at `now` (unix seconds); an expired
    /// one is forgotten.
    fn get(&self, digest: &[u8; 32], now: u64, leeway: u64) -> Option<Principal> {
        let mut entries = self.lock();
        let entry = entries.get(digest)?;
        if entry.usable(now, leeway) {
            return Some(entry.principal.clone());
        }
        entries.remove(digest);
        None
    }

    /// Remembers a verified token. When full, expired tokens go first, then an arbitrary one.
    fn insert(
        &self,
        digest: [u8; 32],
        principal: Principal,
        window: Validity,
        now: u64,
        leeway: u64,
    ) {
        let (Some(exp), Some(nbf)) = (window.exp, window.nbf) else {
            return;
        };
        let entry = Verified {
            principal,
            exp,
            nbf,
        };
        if self.capacity == 0 || !entry.usable(now, leeway) {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&digest) {
            entries.retain(|_, e| e.usable(now, leeway));
            if entries.len() >= self.capacity
                && let Some(victim) = entries.keys().next().copied()
            {
                entries.remove(&victim);
            }
        }
        entries.insert(digest, entry);
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The two identities of `meho serve --dev`: the agent's token and a second, human approver's,
/// so that a held call can be approved without turning four eyes off.
#[derive(Clone)]
pub struct DevTokens {
    /// `MEHO_TOKEN`: principal [`DEV_AGENT`].
    pub agent: String,
    /// `MEHO_APPROVER_TOKEN`: principal [`DEV_APPROVER`].
    pub approver: String,
}

impl std::fmt::Debug for DevTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevTokens { agent: <redacted>, approver: <redacted> }")
    }
}

/// The dev agent token's subject.
pub const DEV_AGENT: &str = "dev";
/// The dev approver token's subject.
pub const DEV_APPROVER: &str = "dev-approver";

/// The dev token's principal: `sub=dev`, tenant `default`, role `tenant_admin`.
pub fn dev_principal() -> Principal {
    Principal {
        subject: DEV_AGENT.to_owned(),
        tenant: DEFAULT_TENANT.to_owned(),
        role: Role::TenantAdmin,
        groups: None,
        scopes: vec![SCOPE_TOOLS.to_owned(), SCOPE_FEED.to_owned()],
        source: "dev".to_owned(),
        client_id: None,
        token: None,
    }
}

/// The dev approver token's principal: `sub=dev-approver`, tenant `default`, role
/// `tenant_admin`: a second human who may decide the dev agent's calls.
pub fn dev_approver_principal() -> Principal {
    Principal {
        subject: DEV_APPROVER.to_owned(),
        ..dev_principal()
    }
}

/// A key usable with `alg` only: RSA for RS256, P-256 for ES256, Ed25519 for EdDSA. Symmetric
/// keys are never used, so a token "signed" with a public key as an HMAC secret is refused.
fn decoding_key(jwk: &Jwk, alg: Algorithm) -> Result<DecodingKey, AuthError> {
    let matches = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    let declared_ok = match jwk.common.key_algorithm {
        None => true,
        Some(declared) => {
            matches!(
                (declared, alg),
                (KeyAlgorithm::RS256, Algorithm::RS256)
                    | (KeyAlgorithm::ES256, Algorithm::ES256)
                    | (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
            )
        }
    };
    if !matches || !declared_ok {
        return Err(AuthError::InvalidToken(format!(
            "the key for this token's `kid` cannot verify {alg:?}"
        )));
    }
    DecodingKey::from_jwk(jwk)
        .map_err(|err| AuthError::InvalidToken(format!("unusable issuer key: {err}")))
}

fn describe_jwt_error(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the token's issuer is not the configured one".into(),
        ErrorKind::InvalidAudience => {
            "the token's audience is not this server's resource URL".into()
        }
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        other => format!("the token is malformed: {other:?}"),
    }
}

fn scopes(claims: &Value) -> Vec<String> {
    let mut out: Vec<String> = match claims.get("scope") {
        Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    match claims.get("scp") {
        Some(Value::Array(list)) => {
            out.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        Some(Value::String(text)) => out.extend(text.split_whitespace().map(str::to_owned)),
        _ => {}
    }
    let mut seen = HashSet::new();
    out.retain(|s| seen.insert(s.clone()));
    out
}

/// Compares in time independent of where the inputs differ. Hand-written: eight lines do not
/// warrant a dependency, and the length leak is fine (the dev token's length is public).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The shared authenticator.
pub type SharedAuthenticator = Arc<Authenticator>;

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn principal(subject: &str) -> Principal {
        Principal {
            subject: subject.to_owned(),
            ..dev_principal()
        }
    }

    fn window(exp: u64, nbf: u64) -> Validity {
        Validity {
            exp: Some(exp),
            nbf: Some(nbf),
        }
    }

    #[test]
    fn a_remembered_token_is_answered_until_its_exp_and_refused_after_it() {
        let cache = VerifiedTokens::new(8);
        let key = VerifiedTokens::digest("token-a");
        cache.insert(key, principal("alice"), window(NOW + 10, 0), NOW, 0);
        assert_eq!(
            cache.get(&key, NOW, 0).map(|p| p.subject),
            Some("alice".into())
        );
        assert_eq!(
            cache.get(&key, NOW + 10, 0).map(|p| p.subject),
            Some("alice".into())
        );
        // One second past `exp`: refused although it is cached, and forgotten.
        assert_eq!(cache.get(&key, NOW + 11, 0), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn expiry_in_the_cache_keeps_the_verifiers_leeway() {
        let cache = VerifiedTokens::new(8);
        let key = VerifiedTokens::digest("token-a");
        cache.insert(key, principal("alice"), window(NOW + 10, 0), NOW, 60);
        assert!(cache.get(&key, NOW + 70, 60).is_some());
        assert_eq!(cache.get(&key, NOW + 71, 60), None);
    }

    #[test]
    fn a_token_not_valid_yet_is_refused_from_the_cache_too() {
        let cache = VerifiedTokens::new(8);
        let key = VerifiedTokens::digest("token-a");
        // Accepted at NOW thanks to the leeway; earlier than that it is not valid.
        cache.insert(
            key,
            principal("alice"),
            window(NOW + 600, NOW + 30),
            NOW,
            60,
        );
        assert!(cache.get(&key, NOW, 60).is_some());
        assert_eq!(cache.get(&key, NOW - 31, 60), None);
    }

    #[test]
    fn an_expired_or_unparsed_window_is_never_remembered() {
        let cache = VerifiedTokens::new(8);
        cache.insert(
            VerifiedTokens::digest("old"),
            principal("alice"),
            window(NOW - 1, 0),
            NOW,
            0,
        );
        cache.insert(
            VerifiedTokens::digest("odd"),
            principal("alice"),
            Validity {
                exp: Some(NOW + 10),
                nbf: None,
            },
            NOW,
            0,
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn another_token_with_the_same_claims_is_not_answered_from_the_cache() {
        let cache = VerifiedTokens::new(8);
        let valid = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
        let forged = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.Zm9yZ2VkIHNpZw";
        cache.insert(
            VerifiedTokens::digest(valid),
            principal("alice"),
            window(NOW + 10, 0),
            NOW,
            0,
        );
        assert!(cache.get(&VerifiedTokens::digest(valid), NOW, 0).is_some());
        assert_eq!(cache.get(&VerifiedTokens::digest(forged), NOW, 0), None);
    }

    #[test]
    fn the_cache_never_grows_past_its_bound() {
        let cache = VerifiedTokens::new(16);
        for i in 0..1000 {
            cache.insert(
                VerifiedTokens::digest(&format!("token-{i}")),
                principal("alice"),
                window(NOW + 10 + i, 0),
                NOW,
                0,
            );
            assert!(cache.len() <= 16);
        }
        assert_eq!(cache.len(), 16);
        // The newest one is always kept.
        assert!(
            cache
                .get(&VerifiedTokens::digest("token-999"), NOW, 0)
                .is_some()
        );
    }

    #[test]
    fn a_full_cache_drops_expired_tokens_first() {
        let cache = VerifiedTokens::new(2);
        let short = VerifiedTokens::digest("short");
        let long = VerifiedTokens::digest("long");
        cache.insert(short, principal("a"), window(NOW + 1, 0), NOW, 0);
        cache.insert(long, principal("b"), window(NOW + 100, 0), NOW, 0);
        let later = NOW + 50;
        cache.insert(
            VerifiedTokens::digest("new"),
            principal("c"),
            window(NOW + 100, 0),
            later,
            0,
        );
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&long, later, 0).is_some());
    }
}
