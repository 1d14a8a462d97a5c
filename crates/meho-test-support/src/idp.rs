//! A minimal OIDC issuer for tests and benches: signing keys of each kind meho accepts (RSA,
//! P-256, Ed25519) with their public JWKs, and an issuer on a loopback port serving discovery
//! metadata and a mutable JWKS. The end-to-end tests run the real `oidc-provider` instead; this
//! one exists to forge tokens a real IdP never issues (wrong algorithms, foreign keys, rotation).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Base64url without padding, as JWKs spell key material.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// Keys

/// A signing key the test holds, with its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    /// The public JWK, `kid` included.
    pub jwk: Value,
    /// For RSA keys: the public key as SPKI PEM, PKCS#1 PEM and PKCS#1 DER (HMAC-confusion
    /// secrets).
    pub public_forms: Vec<Vec<u8>>,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl TestKey {
    /// A fresh RSA 2048 key (slow unoptimized: use [`keys`] for the shared ones).
    pub fn rsa(kid: &str) -> Self {
        use rsa::pkcs1::{EncodeRsaPrivateKey as _, EncodeRsaPublicKey as _};
        use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
        use rsa::traits::PublicKeyParts as _;
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let public = private.to_public_key();
        let der = private.to_pkcs1_der().unwrap();
        TestKey {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            // No `alg` member: many IdPs leave it out, and the key type alone must decide.
            jwk: json!({
                "kty": "RSA",
                "use": "sig",
                "kid": kid,
                "n": b64(&public.n().to_bytes_be()),
                "e": b64(&public.e().to_bytes_be()),
            }),
            public_forms: vec![
                public
                    .to_public_key_pem(LineEnding::LF)
                    .unwrap()
                    .into_bytes(),
                public.to_pkcs1_pem(LineEnding::LF).unwrap().into_bytes(),
                public.to_pkcs1_der().unwrap().as_bytes().to_vec(),
            ],
        }
    }

    /// A fresh P-256 key.
    pub fn ec(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        // Uncompressed SEC1 point: 0x04 || x || y.
        let point = pair.public_key_raw();
        assert_eq!(point.len(), 65);
        TestKey {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(&pair.serialize_der()),
            jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "use": "sig",
                "alg": "ES256",
                "kid": kid,
                "x": b64(&point[1..33]),
                "y": b64(&point[33..65]),
            }),
            public_forms: Vec::new(),
        }
    }

    /// A fresh Ed25519 key.
    pub fn ed(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        TestKey {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(&pair.serialize_der()),
            jwk: json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "use": "sig",
                "alg": "EdDSA",
                "kid": kid,
                "x": b64(pair.public_key_raw()),
            }),
            public_forms: Vec::new(),
        }
    }

    /// Signs `claims` with this key, its algorithm and its `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, Some(&self.kid), claims)
    }

    /// Signs `claims` with this key, claiming `alg` and `kid` in the header.
    pub fn sign_as(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// The keys every test shares, generated once per test binary (RSA generation is seconds in an
/// unoptimized build).
#[derive(Debug)]
pub struct Keys {
    /// In the issuer's JWKS.
    pub rsa: TestKey,
    pub ec: TestKey,
    pub ed: TestKey,
    /// Another issuer's keys, under the same `kid`s as ours.
    pub foreign_rsa: TestKey,
    pub foreign_ec: TestKey,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        // The two RSA keys take seconds each in a debug build: make them side by side.
        let (rsa, foreign_rsa) = std::thread::scope(|scope| {
            let foreign = scope.spawn(|| TestKey::rsa("rsa-1"));
            (TestKey::rsa("rsa-1"), foreign.join().unwrap())
        });
        Keys {
            rsa,
            ec: TestKey::ec("ec-1"),
            ed: TestKey::ed("ed-1"),
            foreign_rsa,
            foreign_ec: TestKey::ec("ec-1"),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Issuer

/// A minimal OIDC issuer on a loopback port: discovery metadata and a mutable JWKS.
#[derive(Debug)]
pub struct Issuer {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub url: String,
    jwks: Arc<Mutex<Vec<Value>>>,
    jwks_hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Issuer {
    /// Serves the shared RSA, P-256 and Ed25519 public keys.
    pub async fn start() -> Self {
        let keys = keys();
        Self::start_with(vec![
            keys.rsa.jwk.clone(),
            keys.ec.jwk.clone(),
            keys.ed.jwk.clone(),
        ])
        .await
    }

    pub async fn start_with(jwks: Vec<Value>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(Mutex::new(jwks));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let metadata = json!({
            "issuer": url,
            "jwks_uri": format!("{url}/jwks"),
            "authorization_endpoint": format!("{url}/authorize"),
            "token_endpoint": format!("{url}/token"),
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        });
        let router = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let metadata = metadata.clone();
                    async move { Json(metadata) }
                }),
            )
            .route(
                "/jwks",
                get({
                    let jwks = jwks.clone();
                    let hits = jwks_hits.clone();
                    move || {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let keys = jwks.lock().unwrap().clone();
                        async move { Json(json!({ "keys": keys })) }
                    }
                }),
            );
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Issuer {
            url,
            jwks,
            jwks_hits,
            task,
        }
    }

    /// Publishes one more key (rotation).
    pub fn add_key(&self, jwk: Value) {
        self.jwks.lock().unwrap().push(jwk);
    }

    /// How often the JWKS was fetched.
    pub fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
