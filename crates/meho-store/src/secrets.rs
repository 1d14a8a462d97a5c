//! Secrets at rest: credentials meho itself must hold (a static API token an operator configures
//! for a REST API), sealed with AES-256-GCM before they reach the store.
//!
//! Invariants:
//! - The key never comes from the database: it is `MEHO_SECRETS_KEY` (base64 of 32 bytes) or the
//!   file `[secrets] key_file` names. The store holds only ciphertext, a nonce and the key's
//!   fingerprint ([`SecretKey::id`]).
//! - Every seal uses a fresh random 96-bit nonce, and the associated data binds the ciphertext to
//!   its tenant, name and key id: a ciphertext copied to another row does not open
//!   ([`SecretsError::Corrupt`]).
//! - No secret value or key reaches `Debug`, `Display`, an error or a log. Keys and opened values
//!   are zeroized when dropped.
//! - Losing the key is an error that says so ([`SecretsError::NoKey`], [`SecretsError::WrongKey`]),
//!   never a panic; rotation re-encrypts every row in one transaction or none.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use zeroize::Zeroizing;

use crate::{Pool, Store};

/// The environment variable that holds the key: base64 of 32 bytes. It wins over `[secrets]
/// key_file`.
pub const KEY_ENV: &str = "MEHO_SECRETS_KEY";

/// The AEAD of every row this build writes, stored per row so a later build can tell.
pub const ALGORITHM: &str = "A256GCM";

/// The largest value [`SealedSecrets::put`] accepts, in bytes: a credential, not a file.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The longest secret name.
pub const MAX_NAME_LEN: usize = 128;

/// The longest tenant.
const MAX_TENANT_LEN: usize = 256;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// Domain separation for the key fingerprint: the id is never a plain hash of the key.
const KEY_ID_CONTEXT: &[u8] = b"meho-secrets-key-id";

/// Errors of sealed secrets. None of them carries a secret value or key material.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// No key is configured, so nothing can be sealed or opened.
    #[error("no secrets key: set MEHO_SECRETS_KEY or [secrets] key_file")]
    NoKey,
    /// The secret was sealed with a different key than the one configured (or given).
    #[error("secret `{name}` was sealed with key {stored_key_id}; the configured key is {key_id}")]
    WrongKey {
        /// The secret's name.
        name: String,
        /// The id of the key that sealed it.
        stored_key_id: String,
        /// The id of the key at hand.
        key_id: String,
    },
    /// The row does not authenticate under its own key: it was tampered with, or its ciphertext
    /// was moved from another name or tenant.
    #[error(
        "secret `{name}` failed authentication: its stored ciphertext was tampered with or moved from another name or tenant"
    )]
    Corrupt {
        /// The secret's name.
        name: String,
    },
    /// The row was sealed with an algorithm this build does not know.
    #[error("secret `{name}` is sealed with `{algorithm}`, which this build cannot open")]
    Algorithm {
        /// The secret's name.
        name: String,
        /// The stored algorithm.
        algorithm: String,
    },
    /// No secret by that name in that tenant.
    #[error("no secret `{name}` in tenant `{tenant}`")]
    NotFound {
        /// The tenant.
        tenant: String,
        /// The name asked for.
        name: String,
    },
    /// The name is not 1 to 128 of `A-Z a-z 0-9 _ . -`.
    #[error("invalid secret name `{name}`: use 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ . -")]
    InvalidName {
        /// The name as given.
        name: String,
    },
    /// The tenant is empty, too long, or holds control characters.
    #[error(
        "invalid tenant `{tenant}`: use 1 to {MAX_TENANT_LEN} characters, none a control character"
    )]
    InvalidTenant {
        /// The tenant as given.
        tenant: String,
    },
    /// The value is empty or larger than [`MAX_VALUE_BYTES`].
    #[error("secret `{name}` is {bytes} bytes: a value must be 1 to {MAX_VALUE_BYTES} bytes")]
    ValueSize {
        /// The secret's name.
        name: String,
        /// Its size.
        bytes: usize,
    },
    /// The opened value is not UTF-8 text.
    #[error("secret `{name}` is not UTF-8 text")]
    NotUtf8 {
        /// The secret's name.
        name: String,
    },
    /// The key is malformed (not base64, not 32 bytes), or the old and new key of a rotation are
    /// the same.
    #[error("invalid secrets key: {0}")]
    Key(String),
    /// The operating system's random source failed (for a new key or a nonce).
    #[error("cannot draw random bytes: {0}")]
    Random(String),
    /// The key file cannot be used: unreadable, or readable by group or others.
    #[error("secrets key file `{}`: {problem}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// The OS error, if there was one.
        #[source]
        source: Option<std::io::Error>,
    },
    /// Sealing failed (the AEAD refused the input).
    #[error("cannot seal secret `{name}`")]
    Seal {
        /// The secret's name.
        name: String,
    },
    /// A store query failed.
    #[error("secrets store query failed")]
    Store(#[source] sqlx::Error),
}

/// The 32-byte AES-256-GCM key that seals secrets. Zeroized on drop; `Debug` shows only its id.
pub struct SecretKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey").field("id", &self.id()).finish()
    }
}

impl SecretKey {
    /// A fresh random key from the operating system.
    pub fn generate() -> Result<Self, SecretsError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut_slice())
            .map_err(|err| SecretsError::Random(err.to_string()))?;
        Ok(SecretKey { bytes })
    }

    /// A key from its base64 text (standard alphabet; surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, SecretsError> {
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                // The decoder's message quotes the offending character: a piece of the key.
                .map_err(|_| SecretsError::Key("not valid base64".to_owned()))?,
        );
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if decoded.len() != KEY_LEN {
            return Err(SecretsError::Key(format!(
                "a key is {KEY_LEN} bytes of base64; this one decodes to {} bytes",
                decoded.len()
            )));
        }
        bytes.copy_from_slice(&decoded);
        Ok(SecretKey { bytes })
    }

    /// The key from `MEHO_SECRETS_KEY`, else from `file` (base64 text, which must not be readable
    /// or writable by group or others), else `None`. An empty variable counts as unset; a named
    /// file that is missing is an error, not `None`.
    pub fn load(file: Option<&Path>) -> Result<Option<Self>, SecretsError> {
        if let Some(text) = std::env::var_os(KEY_ENV).filter(|v| !v.is_empty()) {
            let text =
                Zeroizing::new(text.into_string().map_err(|_| {
                    SecretsError::Key(format!("{KEY_ENV} is not valid base64 text"))
                })?);
            return Self::from_base64(&text).map(Some).map_err(|err| match err {
                SecretsError::Key(why) => SecretsError::Key(format!("{KEY_ENV}: {why}")),
                other => other,
            });
        }
        match file {
            Some(path) => Self::from_file(path).map(Some),
            None => Ok(None),
        }
    }

    /// The key in `path` (base64 text), ignoring the environment: for the new key of a rotation.
    /// A file readable or writable by group or others is refused.
    pub fn from_file(path: &Path) -> Result<Self, SecretsError> {
        let file_error = |problem: &str, source: Option<std::io::Error>| SecretsError::KeyFile {
            path: path.to_path_buf(),
            problem: problem.to_owned(),
            source,
        };
        let mut file =
            std::fs::File::open(path).map_err(|err| file_error("cannot open it", Some(err)))?;
        // The mode of the file actually opened, not of whatever the path names a moment later.
        let metadata = file
            .metadata()
            .map_err(|err| file_error("cannot read its metadata", Some(err)))?;
        if !metadata.is_file() {
            return Err(file_error("not a regular file", None));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(file_error(
                    &format!(
                        "mode {mode:04o} lets group or others read or write the key; run `chmod 600` on it"
                    ),
                    None,
                ));
            }
        }
        let mut text = Zeroizing::new(String::new());
        file.read_to_string(&mut text)
            .map_err(|err| file_error("cannot read it", Some(err)))?;
        Self::from_base64(&text).map_err(|err| match err {
            SecretsError::Key(why) => file_error(&why, None),
            other => other,
        })
    }

    /// The key as base64 text, for writing a key file. This is the secret itself.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.bytes.as_slice())
    }

    /// A fingerprint that is not secret: the first 16 hex digits of
    /// `sha256("meho-secrets-key-id" || key)`. Stored with every row it seals.
    pub fn id(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(KEY_ID_CONTEXT);
        hash.update(self.bytes.as_slice());
        let digest = hash.finalize();
        hex::encode(digest.get(..8).unwrap_or_default())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.bytes).into())
    }

    /// Seals `value` for `tenant`/`name`: a fresh nonce and the ciphertext with its tag.
    fn seal(&self, tenant: &str, name: &str, value: &[u8]) -> Result<Sealed, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|err| SecretsError::Random(err.to_string()))?;
        let key_id = self.id();
        let aad = associated_data(tenant, name, &key_id);
        let ciphertext = self
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: value,
                    aad: &aad,
                },
            )
            .map_err(|_| SecretsError::Seal {
                name: name.to_owned(),
            })?;
        Ok(Sealed {
            key_id,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a row sealed with this key (the caller checked its key id).
    fn open(
        &self,
        tenant: &str,
        name: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<SecretValue, SecretsError> {
        let corrupt = || SecretsError::Corrupt {
            name: name.to_owned(),
        };
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| corrupt())?;
        let aad = associated_data(tenant, name, &self.id());
        let plain = self
            .cipher()
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| corrupt())?;
        Ok(SecretValue {
            name: name.to_owned(),
            bytes: Zeroizing::new(plain),
        })
    }
}

/// `tenant NUL name NUL key_id`: names hold no NUL, so the split is unambiguous.
fn associated_data(tenant: &str, name: &str, key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tenant.len() + name.len() + key_id.len() + 2);
    aad.extend_from_slice(tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

/// What one seal stores.
struct Sealed {
    key_id: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

/// An opened secret. Zeroized on drop; `Debug` prints `[secret]`.
pub struct SecretValue {
    name: String,
    bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

impl SecretValue {
    /// The value's bytes. Do not log them.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The value as text, for a token that goes into a header.
    pub fn expose_str(&self) -> Result<&str, SecretsError> {
        std::str::from_utf8(&self.bytes).map_err(|_| SecretsError::NotUtf8 {
            name: self.name.clone(),
        })
    }
}

/// What [`SealedSecrets::list`] tells about a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// The secret's name.
    pub name: String,
    /// The id of the key that sealed it ([`SecretKey::id`]).
    pub key_id: String,
    /// When the name was first stored.
    pub created_at: SystemTime,
    /// When its value was last replaced or re-encrypted.
    pub updated_at: SystemTime,
}

/// The sealed secrets in a store, opened with the configured key (if any).
#[derive(Debug, Clone)]
pub struct SealedSecrets {
    pool: Pool,
    key: Option<std::sync::Arc<SecretKey>>,
}

const UPSERT: &str = "INSERT INTO secrets \
     (tenant, name, key_id, algorithm, nonce, ciphertext, created_at_us, updated_at_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
     ON CONFLICT (tenant, name) DO UPDATE SET key_id = excluded.key_id, \
     algorithm = excluded.algorithm, nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
     updated_at_us = excluded.updated_at_us";
const GET: &str = "SELECT key_id, algorithm, nonce, ciphertext FROM secrets \
     WHERE tenant = $1 AND name = $2";
const LIST: &str = "SELECT name, key_id, created_at_us, updated_at_us FROM secrets \
     WHERE tenant = $1 ORDER BY name";
const DELETE: &str = "DELETE FROM secrets WHERE tenant = $1 AND name = $2";
const ALL: &str = "SELECT tenant, name, key_id, algorithm, nonce, ciphertext FROM secrets \
     ORDER BY tenant, name";
const RESEAL: &str = "UPDATE secrets SET key_id = $3, algorithm = $4, nonce = $5, \
     ciphertext = $6, updated_at_us = $7 WHERE tenant = $1 AND name = $2";
/// Blocks writers (not readers) on other replicas until the rotation commits, so no row sealed
/// with the old key slips in behind it.
const PG_LOCK: &str = "LOCK TABLE secrets IN SHARE ROW EXCLUSIVE MODE";

/// A stored row, as read for opening.
struct StoredRow {
    tenant: String,
    name: String,
    key_id: String,
    algorithm: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

/// Reads a [`StoredRow`]: tenant and name from `$tenant`/`$name` when they are `Some` (the query
/// selected by them), else from the row.
macro_rules! stored_row {
    ($row:expr, $tenant:expr, $name:expr) => {{
        let row = $row;
        let read = || -> Result<StoredRow, sqlx::Error> {
            Ok(StoredRow {
                tenant: match $tenant {
                    Some(tenant) => tenant,
                    None => row.try_get("tenant")?,
                },
                name: match $name {
                    Some(name) => name,
                    None => row.try_get("name")?,
                },
                key_id: row.try_get("key_id")?,
                algorithm: row.try_get("algorithm")?,
                nonce: row.try_get("nonce")?,
                ciphertext: row.try_get("ciphertext")?,
            })
        };
        read()
    }};
}

/// Runs `$body` with `$pool` bound to whichever backend's pool `$which` is.
macro_rules! on_pool {
    ($which:expr, $pool:ident => $body:expr) => {
        match $which {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// The rotation's transaction on either backend: every row re-sealed, or none.
macro_rules! rotate_in {
    ($tx:expr, $old:expr, $new:expr, $now:expr) => {
        async {
            let mut tx = $tx;
            let rows = sqlx::query(ALL)
                .fetch_all(&mut *tx)
                .await
                .map_err(SecretsError::Store)?;
            let new_id = $new.id();
            let old_id = $old.id();
            let mut resealed = 0usize;
            for row in &rows {
                let stored = stored_row!(row, None::<String>, None::<String>)
                    .map_err(SecretsError::Store)?;
                // Already under the new key: a rotation that is run again finds its own work.
                if stored.key_id == new_id {
                    continue;
                }
                let value = open_row(&stored, $old, &old_id)?;
                let sealed = $new.seal(&stored.tenant, &stored.name, value.expose())?;
                sqlx::query(RESEAL)
                    .bind(&stored.tenant)
                    .bind(&stored.name)
                    .bind(&sealed.key_id)
                    .bind(ALGORITHM)
                    .bind(&sealed.nonce)
                    .bind(&sealed.ciphertext)
                    .bind($now)
                    .execute(&mut *tx)
                    .await
                    .map_err(SecretsError::Store)?;
                resealed += 1;
            }
            tx.commit().await.map_err(SecretsError::Store)?;
            Ok::<usize, SecretsError>(resealed)
        }
        .await
    };
}

/// Opens `stored` with `key` (whose id is `key_id`), telling a wrong key and an unknown algorithm
/// apart from a row that does not authenticate.
fn open_row(
    stored: &StoredRow,
    key: &SecretKey,
    key_id: &str,
) -> Result<SecretValue, SecretsError> {
    if stored.algorithm != ALGORITHM {
        return Err(SecretsError::Algorithm {
            name: stored.name.clone(),
            algorithm: stored.algorithm.clone(),
        });
    }
    if stored.key_id != key_id {
        return Err(SecretsError::WrongKey {
            name: stored.name.clone(),
            stored_key_id: stored.key_id.clone(),
            key_id: key_id.to_owned(),
        });
    }
    key.open(
        &stored.tenant,
        &stored.name,
        &stored.nonce,
        &stored.ciphertext,
    )
}

impl SealedSecrets {
    /// The secrets in `store` (migrated by [`Store::open`]), sealed and opened with `key`. Without
    /// a key, [`list`](Self::list) and [`delete`](Self::delete) work and the rest is
    /// [`SecretsError::NoKey`].
    pub fn new(store: &Store, key: Option<SecretKey>) -> Self {
        SealedSecrets {
            pool: store.pool().clone(),
            key: key.map(std::sync::Arc::new),
        }
    }

    /// The id of the configured key, if there is one.
    pub fn key_id(&self) -> Option<String> {
        self.key.as_deref().map(SecretKey::id)
    }

    fn key(&self) -> Result<&SecretKey, SecretsError> {
        self.key.as_deref().ok_or(SecretsError::NoKey)
    }

    /// Seals `value` and stores it as `name` in `tenant`, replacing any value it had (its
    /// creation time is kept).
    pub async fn put(&self, tenant: &str, name: &str, value: &[u8]) -> Result<(), SecretsError> {
        check_tenant(tenant)?;
        check_name(name)?;
        if value.is_empty() || value.len() > MAX_VALUE_BYTES {
            return Err(SecretsError::ValueSize {
                name: name.to_owned(),
                bytes: value.len(),
            });
        }
        let sealed = self.key()?.seal(tenant, name, value)?;
        let now = now_us();
        on_pool!(&self.pool, pool => sqlx::query(UPSERT)
            .bind(tenant)
            .bind(name)
            .bind(&sealed.key_id)
            .bind(ALGORITHM)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(SecretsError::Store)?;
        tracing::info!(tenant, name, key_id = %sealed.key_id, "secret stored");
        Ok(())
    }

    /// Opens `name` in `tenant` with the configured key.
    pub async fn get(&self, tenant: &str, name: &str) -> Result<SecretValue, SecretsError> {
        check_tenant(tenant)?;
        check_name(name)?;
        let key = self.key()?;
        let stored = on_pool!(&self.pool, pool => {
            match sqlx::query(GET).bind(tenant).bind(name).fetch_optional(pool).await {
                Ok(Some(row)) => {
                    stored_row!(&row, Some(tenant.to_owned()), Some(name.to_owned())).map(Some)
                }
                Ok(None) => Ok(None),
                Err(err) => Err(err),
            }
        })
        .map_err(SecretsError::Store)?
        .ok_or_else(|| SecretsError::NotFound {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        })?;
        open_row(&stored, key, &key.id())
    }

    /// The secrets of `tenant` by name: names, key ids and times, never values. Needs no key.
    pub async fn list(&self, tenant: &str) -> Result<Vec<SecretMeta>, SecretsError> {
        check_tenant(tenant)?;
        on_pool!(&self.pool, pool => {
            match sqlx::query(LIST).bind(tenant).fetch_all(pool).await {
                Ok(rows) => rows
                    .iter()
                    .map(|row| {
                        Ok(SecretMeta {
                            name: row.try_get("name")?,
                            key_id: row.try_get("key_id")?,
                            created_at: from_us(row.try_get("created_at_us")?),
                            updated_at: from_us(row.try_get("updated_at_us")?),
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>(),
                Err(err) => Err(err),
            }
        })
        .map_err(SecretsError::Store)
    }

    /// Deletes `name` in `tenant`; `false` when there was none. Needs no key.
    pub async fn delete(&self, tenant: &str, name: &str) -> Result<bool, SecretsError> {
        check_tenant(tenant)?;
        check_name(name)?;
        let deleted = on_pool!(&self.pool, pool => sqlx::query(DELETE)
            .bind(tenant)
            .bind(name)
            .execute(pool)
            .await
            .map(|done| done.rows_affected() > 0))
        .map_err(SecretsError::Store)?;
        if deleted {
            tracing::info!(tenant, name, "secret deleted");
        }
        Ok(deleted)
    }

    /// Re-encrypts every stored secret (all tenants) from `old` to `new` in one transaction and
    /// returns how many it re-encrypted. Rows already sealed with `new` are left as they are, so
    /// running it again is harmless. A row sealed with any other key, or one that does not
    /// authenticate, fails the whole rotation and changes nothing.
    pub async fn rotate(&self, old: &SecretKey, new: &SecretKey) -> Result<usize, SecretsError> {
        if old.id() == new.id() {
            return Err(SecretsError::Key(
                "the new key is the key already in use".to_owned(),
            ));
        }
        let now = now_us();
        let resealed = match &self.pool {
            Pool::Sqlite(pool) => {
                // The write lock up front: the reads below never have to upgrade to it.
                let tx = pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(SecretsError::Store)?;
                rotate_in!(tx, old, new, now)?
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(SecretsError::Store)?;
                sqlx::query(PG_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(SecretsError::Store)?;
                rotate_in!(tx, old, new, now)?
            }
        };
        tracing::info!(
            resealed,
            old_key_id = %old.id(),
            new_key_id = %new.id(),
            "secrets rotated"
        );
        Ok(resealed)
    }
}

/// Names are `[A-Za-z0-9_.-]{1,128}`: safe in a config reference, a URL and a log line.
fn check_name(name: &str) -> Result<(), SecretsError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(SecretsError::InvalidName {
            name: name.to_owned(),
        })
    }
}

fn check_tenant(tenant: &str) -> Result<(), SecretsError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_LEN
        && !tenant.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(SecretsError::InvalidTenant {
            tenant: tenant.to_owned(),
        })
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn from_us(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_through_base64_and_debug_shows_only_the_id() {
        let key = SecretKey::generate().unwrap();
        let again = SecretKey::from_base64(&format!(" {}\n", key.to_base64())).unwrap();
        assert_eq!(key.id(), again.id());
        assert_eq!(key.id().len(), 16);
        let debug = format!("{key:?}");
        assert!(debug.contains(&key.id()), "{debug}");
        assert!(!debug.contains(&key.to_base64()), "{debug}");
    }

    #[test]
    fn key_id_is_the_domain_separated_sha256_prefix() {
        let key =
            SecretKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
                .unwrap();
        let mut hash = Sha256::new();
        hash.update(b"meho-secrets-key-id");
        hash.update([7u8; 32]);
        assert_eq!(key.id(), hex::encode(&hash.finalize()[..8]));
    }

    #[test]
    fn malformed_keys_are_key_errors_that_quote_nothing_of_the_key() {
        for text in ["", "not base64 at all!", "c2hvcnQ=", &"QUFB".repeat(20)] {
            let err = SecretKey::from_base64(text).unwrap_err();
            assert!(matches!(err, SecretsError::Key(_)), "{err:?}");
            if text.len() > 3 {
                assert!(!err.to_string().contains(text), "{err}");
            }
        }
    }

    #[test]
    fn a_sealed_value_opens_only_under_its_own_tenant_name_and_key() {
        let key = SecretKey::generate().unwrap();
        let sealed = key.seal("t", "api.token", b"hunter2").unwrap();
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        let opened = key
            .open("t", "api.token", &sealed.nonce, &sealed.ciphertext)
            .unwrap();
        assert_eq!(opened.expose(), b"hunter2");
        assert_eq!(opened.expose_str().unwrap(), "hunter2");
        assert_eq!(format!("{opened:?}"), "[secret]");
        for (tenant, name) in [("u", "api.token"), ("t", "other")] {
            let err = key
                .open(tenant, name, &sealed.nonce, &sealed.ciphertext)
                .unwrap_err();
            assert!(matches!(err, SecretsError::Corrupt { .. }), "{err:?}");
        }
        let other = SecretKey::generate().unwrap();
        assert!(
            other
                .open("t", "api.token", &sealed.nonce, &sealed.ciphertext)
                .is_err()
        );
    }

    #[test]
    fn every_seal_draws_a_fresh_nonce() {
        let key = SecretKey::generate().unwrap();
        let a = key.seal("t", "n", b"same").unwrap();
        let b = key.seal("t", "n", b"same").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "API_TOKEN", "github.token-1", &"x".repeat(128)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a/b", "a\0b", "é", &"x".repeat(129), "stored:x"] {
            assert!(
                matches!(check_name(bad), Err(SecretsError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }
}
