//! meho's own JWT issuer: an ES256 (P-256) key that signs short identity tokens for callers
//! without an identity provider's token (stdio, dev tokens), so they can log in to Vault's JWT
//! auth, which trusts the key's public PEM (`jwt_validation_pubkeys`) or its JWKS.

use std::fmt;
use std::fs;
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::SecretKey;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::VaultError;

/// Who a token is for: the claims a Vault JWT role maps to metadata and policies. Vault reserves
/// the metadata key `role`, so a role maps the `role` claim to another key (the test peer uses
/// `claim_mappings = {tenant = "tenant", role = "meho_role"}` and `groups_claim = "groups"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityClaims {
    /// The principal (`sub`).
    pub sub: String,
    /// The tenant.
    pub tenant: String,
    /// The caller's groups.
    pub groups: Vec<String>,
    /// The caller's meho role.
    pub role: String,
}

/// An ES256 signing key with its key id (the RFC 7638 thumbprint of its public JWK) and the
/// issuer it signs as. `Debug` shows the issuer and key id only.
pub struct JwtIssuer {
    secret: SecretKey,
    encoding: EncodingKey,
    issuer: String,
    kid: String,
    x: String,
    y: String,
}

impl fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtIssuer")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtIssuer {
    /// A fresh key, held in memory only.
    pub fn generate(issuer: &str) -> Result<Self, VaultError> {
        Self::from_secret(random_secret()?, issuer)
    }

    /// Reads a PKCS#8 PEM P-256 key from `path`, or creates one (mode 0600, its directory
    /// created when missing) when the file does not exist.
    pub fn load_or_create(path: &Path, issuer: &str) -> Result<Self, VaultError> {
        let file_error = |source| VaultError::KeyFile {
            path: path.to_owned(),
            source,
        };
        match fs::read_to_string(path) {
            Ok(pem) => return Self::from_pem(&pem, path, issuer),
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(file_error(err)),
        }
        let secret = random_secret()?;
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|err| VaultError::key(format!("cannot encode the new key: {err}")))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(file_error)?;
        }
        let created = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        let mut file = match created {
            Ok(file) => file,
            // Another process created it first: use that key.
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                let pem = fs::read_to_string(path).map_err(file_error)?;
                return Self::from_pem(&pem, path, issuer);
            }
            Err(err) => return Err(file_error(err)),
        };
        file.write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(file_error)?;
        Self::from_secret(secret, issuer)
    }

    fn from_pem(pem: &str, path: &Path, issuer: &str) -> Result<Self, VaultError> {
        let secret = SecretKey::from_pkcs8_pem(pem).map_err(|_| {
            VaultError::key(format!(
                "`{}` is not a PKCS#8 PEM P-256 private key",
                path.display()
            ))
        })?;
        Self::from_secret(secret, issuer)
    }

    fn from_secret(secret: SecretKey, issuer: &str) -> Result<Self, VaultError> {
        let der = secret
            .to_pkcs8_der()
            .map_err(|err| VaultError::key(format!("cannot encode the key: {err}")))?;
        let encoding = EncodingKey::from_ec_der(der.as_bytes());
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(VaultError::key("the public key has no coordinates"));
        };
        let x = URL_SAFE_NO_PAD.encode(x);
        let y = URL_SAFE_NO_PAD.encode(y);
        // RFC 7638: the SHA-256 of the required members, in lexicographic order, no spaces.
        let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint.as_bytes()));
        Ok(JwtIssuer {
            secret,
            encoding,
            issuer: issuer.to_owned(),
            kid,
            x,
            y,
        })
    }

    /// The issuer (`iss`) this key signs as.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key id (`kid`) of every token and of the JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A signed token for `claims`: `iss`, `aud`, `sub`, `tenant`, `groups`, `role`, `iat`,
    /// `nbf` (now), `exp` (now + `ttl`) and a random `jti`.
    pub fn issue(
        &self,
        claims: &IdentityClaims,
        audience: &str,
        ttl: Duration,
    ) -> Result<String, VaultError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| VaultError::key("the clock is before 1970"))?
            .as_secs();
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti)
            .map_err(|err| VaultError::key(format!("no randomness for the jti: {err}")))?;
        let body = json!({
            "iss": self.issuer,
            "aud": audience,
            "sub": claims.sub,
            "tenant": claims.tenant,
            "groups": claims.groups,
            "role": claims.role,
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(ttl.as_secs()),
            "jti": URL_SAFE_NO_PAD.encode(jti),
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &body, &self.encoding)
            .map_err(|err| VaultError::key(format!("cannot sign a token: {err}")))
    }

    /// The public key as a JWKS: `{"keys": [{kty, crv, x, y, kid, alg, use}]}`.
    pub fn jwks(&self) -> Value {
        json!({
            "keys": [{
                "kty": "EC",
                "crv": "P-256",
                "x": self.x,
                "y": self.y,
                "kid": self.kid,
                "alg": "ES256",
                "use": "sig",
            }]
        })
    }

    /// The public key as SPKI PEM (for Vault's `jwt_validation_pubkeys`).
    pub fn public_key_pem(&self) -> String {
        // Encoding a valid P-256 point cannot fail; an empty string would be refused by Vault.
        self.secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }
}

/// A uniformly random valid P-256 scalar (a 32-byte draw is out of range with probability
/// ~2^-32; a few draws suffice).
fn random_secret() -> Result<SecretKey, VaultError> {
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|err| VaultError::key(format!("no randomness for a key: {err}")))?;
        let key = SecretKey::from_slice(&bytes);
        bytes.fill(0);
        if let Ok(key) = key {
            return Ok(key);
        }
    }
    Err(VaultError::key("cannot draw a valid P-256 key"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    fn claims() -> IdentityClaims {
        IdentityClaims {
            sub: "alice".to_owned(),
            tenant: "acme".to_owned(),
            groups: vec!["ops".to_owned(), "dev".to_owned()],
            role: "operator".to_owned(),
        }
    }

    fn verify(issuer: &JwtIssuer, token: &str, audience: &str) -> Value {
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(issuer.kid()));
        let set: JwkSet = serde_json::from_value(issuer.jwks()).unwrap();
        let jwk = set.find(issuer.kid()).unwrap();
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer.issuer()]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .unwrap()
            .claims
    }

    #[test]
    fn issued_tokens_verify_with_the_issuers_jwks() {
        let issuer = JwtIssuer::generate("https://meho.test").unwrap();
        let token = issuer
            .issue(&claims(), "vault", Duration::from_secs(60))
            .unwrap();
        let body = verify(&issuer, &token, "vault");
        assert_eq!(body["sub"], "alice");
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["groups"], json!(["ops", "dev"]));
        assert_eq!(body["role"], "operator");
        assert_eq!(body["iss"], "https://meho.test");
        assert_eq!(body["aud"], "vault");
        let (iat, exp) = (body["iat"].as_u64().unwrap(), body["exp"].as_u64().unwrap());
        assert_eq!(exp - iat, 60);
        assert!(body["jti"].as_str().is_some_and(|j| j.len() >= 20));
        let again = issuer
            .issue(&claims(), "vault", Duration::from_secs(60))
            .unwrap();
        assert_ne!(verify(&issuer, &again, "vault")["jti"], body["jti"]);
    }

    #[test]
    fn tokens_of_another_key_do_not_verify() {
        let ours = JwtIssuer::generate("https://meho.test").unwrap();
        let theirs = JwtIssuer::generate("https://meho.test").unwrap();
        assert_ne!(ours.kid(), theirs.kid());
        let token = theirs
            .issue(&claims(), "vault", Duration::from_secs(60))
            .unwrap();
        let set: JwkSet = serde_json::from_value(ours.jwks()).unwrap();
        let key = DecodingKey::from_jwk(&set.keys[0]).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["vault"]);
        assert!(jsonwebtoken::decode::<Value>(&token, &key, &validation).is_err());
    }

    #[test]
    fn public_key_pem_matches_the_jwk() {
        let issuer = JwtIssuer::generate("https://meho.test").unwrap();
        let pem = issuer.public_key_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        use p256::pkcs8::DecodePublicKey as _;
        let parsed = p256::PublicKey::from_public_key_pem(&pem).unwrap();
        let point = parsed.to_encoded_point(false);
        let jwks = issuer.jwks();
        assert_eq!(
            jwks["keys"][0]["x"],
            URL_SAFE_NO_PAD.encode(point.x().unwrap())
        );
        assert_eq!(
            jwks["keys"][0]["y"],
            URL_SAFE_NO_PAD.encode(point.y().unwrap())
        );
    }

    #[test]
    fn load_or_create_persists_the_key_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/issuer.pem");
        let first = JwtIssuer::load_or_create(&path, "https://meho.test").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = JwtIssuer::load_or_create(&path, "https://meho.test").unwrap();
        assert_eq!(first.kid(), again.kid());
        assert_eq!(first.jwks(), again.jwks());
        let token = first
            .issue(&claims(), "vault", Duration::from_secs(60))
            .unwrap();
        verify(&again, &token, "vault");
        assert!(!format!("{first:?}").contains("PRIVATE"));
    }

    #[test]
    fn load_or_create_refuses_a_file_that_is_not_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issuer.pem");
        fs::write(&path, "not a key").unwrap();
        let err = JwtIssuer::load_or_create(&path, "https://meho.test").unwrap_err();
        assert!(matches!(err, VaultError::Key { .. }), "{err}");
    }
}
