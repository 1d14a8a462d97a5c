//! Signed checkpoints of each tenant's chain head, the Ed25519 audit key, and the witness file.
//!
//! A checkpoint commits to `(tenant, seq, head_hash, time)` under the audit key. Anyone with the
//! public key can check it; nobody without the private key can make one. Each checkpoint is stored
//! in the database and appended to a witness file kept outside it, so a database that was
//! truncated or rolled back to an older copy no longer reaches the witness's latest checkpoint.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AuditError;
use crate::chain::sha256_hex;
use crate::record::canonical_bytes;

/// A signed statement that `tenant`'s chain had `seq` records ending in `head_hash` at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The tenant.
    pub tenant: String,
    /// The sequence number of the head record.
    pub seq: i64,
    /// The head record's hash, lowercase hex.
    pub head_hash: String,
    /// Unix time in microseconds.
    pub time: i64,
    /// The first 16 hex digits of sha256 of the signing key's raw public key.
    pub key_id: String,
    /// Ed25519 signature over [`Checkpoint::signed_bytes`], standard base64.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes the signature covers: RFC 8785 JSON of
    /// `{"v":1,"type":"meho-audit-checkpoint","tenant","seq","head_hash","time","key_id"}`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        canonical_bytes(&json!({
            "v": 1,
            "type": "meho-audit-checkpoint",
            "tenant": self.tenant,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "time": self.time,
            "key_id": self.key_id,
        }))
    }

    /// Whether the signature is valid under `key`.
    pub fn verify(&self, key: &AuditPublicKey) -> bool {
        let Ok(bytes) = BASE64.decode(&self.signature) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.key_id == key.key_id
            && key
                .key
                .verify_strict(&self.signed_bytes(), &signature)
                .is_ok()
    }
}

/// The private audit key: signs checkpoints.
#[derive(Debug)]
pub struct AuditKey {
    key: SigningKey,
    public: AuditPublicKey,
}

/// The public audit key: all `meho audit verify` needs.
#[derive(Debug, Clone)]
pub struct AuditPublicKey {
    key: VerifyingKey,
    key_id: String,
}

impl AuditPublicKey {
    /// Reads a SubjectPublicKeyInfo PEM file (`-----BEGIN PUBLIC KEY-----`).
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let pem = fs::read_to_string(path).map_err(|source| AuditError::io(path, source))?;
        let key = VerifyingKey::from_public_key_pem(&pem).map_err(|err| AuditError::Key {
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: VerifyingKey) -> Self {
        let digest = sha256_hex(key.as_bytes());
        AuditPublicKey {
            key,
            key_id: digest.get(..16).unwrap_or_default().to_owned(),
        }
    }

    /// The key id checkpoints carry.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The key as SubjectPublicKeyInfo PEM.
    pub fn to_pem(&self) -> Result<String, AuditError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|err| AuditError::Key {
                path: PathBuf::new(),
                message: err.to_string(),
            })
    }
}

impl AuditKey {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, AuditError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|err| AuditError::Key {
            path: PathBuf::new(),
            message: format!("no randomness available: {err}"),
        })?;
        Ok(Self::from_signing_key(SigningKey::from_bytes(&seed)))
    }

    fn from_signing_key(key: SigningKey) -> Self {
        let public = AuditPublicKey::from_key(key.verifying_key());
        AuditKey { key, public }
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let pem = fs::read_to_string(path).map_err(|source| AuditError::io(path, source))?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|err| AuditError::Key {
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;
        Ok(Self::from_signing_key(key))
    }

    /// Writes the private key (mode 0600) and the public key. Refuses to replace either file:
    /// checkpoints already signed can only be verified with the public key they were signed for.
    pub fn save(&self, private_path: &Path, public_path: &Path) -> Result<(), AuditError> {
        for path in [private_path, public_path] {
            if path.exists() {
                return Err(AuditError::Key {
                    path: path.to_path_buf(),
                    message: "already exists; refusing to replace an audit key file (checkpoints signed with the old key could no longer be verified)".to_owned(),
                });
            }
        }
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|err| AuditError::Key {
                path: private_path.to_path_buf(),
                message: err.to_string(),
            })?;
        write_new(private_path, pem.as_bytes(), 0o600)?;
        write_new(public_path, self.public.to_pem()?.as_bytes(), 0o644)
    }

    /// The matching public key.
    pub fn public(&self) -> &AuditPublicKey {
        &self.public
    }

    /// Signs a checkpoint of `tenant` at `seq` / `head_hash`.
    pub fn checkpoint(&self, tenant: &str, seq: i64, head_hash: &str, time: i64) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            tenant: tenant.to_owned(),
            seq,
            head_hash: head_hash.to_owned(),
            time,
            key_id: self.public.key_id.clone(),
            signature: String::new(),
        };
        let signature = self.key.sign(&checkpoint.signed_bytes());
        checkpoint.signature = BASE64.encode(signature.to_bytes());
        checkpoint
    }
}

/// Cuts off a last line without its newline: a write torn by a crash, never acknowledged (see
/// [`Witness::read`]). Appending after it would glue the next checkpoint onto the fragment and
/// turn both into one unreadable line in the middle of the file.
fn drop_torn_tail(file: &mut fs::File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last == [b'\n'] {
        return Ok(());
    }
    let mut text = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut text)?;
    let keep = text
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |end| end + 1);
    file.set_len(u64::try_from(keep).unwrap_or(len))?;
    file.sync_data()
}

/// Creates `path` (and its directory) with `mode`, failing if it exists, and syncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AuditError> {
    let io = |source| AuditError::io(path, source);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| AuditError::io(dir, source))?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// The append-only witness file: one checkpoint per line, JSON.
#[derive(Debug, Clone)]
pub struct Witness {
    path: PathBuf,
}

/// One witness line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessLineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl Witness {
    /// The witness at `path`; the file is created on first append.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Witness { path: path.into() }
    }

    /// Where the witness lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `checkpoint` and syncs it to disk before returning.
    pub fn append(&self, checkpoint: &Checkpoint) -> Result<(), AuditError> {
        let io = |source| AuditError::io(&self.path, source);
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let mut line = serde_json::to_vec(checkpoint)
            .map_err(|err| AuditError::io(&self.path, std::io::Error::other(err)))?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        drop_torn_tail(&mut file).map_err(io)?;
        file.write_all(&line).map_err(io)?;
        file.sync_data().map_err(io)
    }

    /// Every checkpoint in the file, with the lines that could not be parsed. A missing file is
    /// an empty witness. A last line without its newline is a write torn by a crash: it was never
    /// acknowledged, so it is skipped rather than reported.
    pub fn read(&self) -> Result<(Vec<Checkpoint>, Vec<WitnessLineError>), AuditError> {
        let text = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()));
            }
            Err(source) => return Err(AuditError::io(&self.path, source)),
        };
        let complete = match text.iter().rposition(|&b| b == b'\n') {
            Some(end) => text.get(..=end).unwrap_or_default(),
            None => &[],
        };
        let mut checkpoints = Vec::new();
        let mut errors = Vec::new();
        for (index, line) in complete.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Checkpoint>(line) {
                Ok(checkpoint) => checkpoints.push(checkpoint),
                Err(err) => errors.push(WitnessLineError {
                    line: index + 1,
                    message: err.to_string(),
                }),
            }
        }
        Ok((checkpoints, errors))
    }
}
