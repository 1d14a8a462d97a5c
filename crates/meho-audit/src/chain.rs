//! The per-tenant hash chain: `hash = sha256(prev_hash || canonical_bytes(record))`, where
//! `prev_hash` is the previous record's hash as 32 raw bytes (zeros for the first record).

use sha2::{Digest, Sha256};

/// The 32 bytes of a lowercase-hex sha256, or `None` if it is not one.
pub fn from_hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// The chain hash of a record, lowercase hex. `prev_hash` must be 64 hex digits.
pub fn link(prev_hash: &str, canonical: &[u8]) -> Option<String> {
    let prev = from_hex32(prev_hash)?;
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical);
    Some(hex::encode(hasher.finalize()))
}

/// Whether `hash` (lowercase hex) is `sha256(prev_hash || canonical)`, without allocating.
pub(crate) fn links(prev_hash: &str, canonical: &[u8], hash: &str) -> bool {
    let (Some(prev), Some(expected)) = (from_hex32(prev_hash), from_hex32(hash)) else {
        return false;
    };
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical);
    hasher.finalize().as_slice() == expected.as_slice()
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
