//! Key names: where a key is stored, how it appears in logs, and how new keys are made.

use sha2::{Digest, Sha256};

/// Prefix of every session in the store (Tyk's layout).
pub const SESSION_PREFIX: &str = "apikey-";

/// The quota counter of a key id (Tyk's `quota-<hash or key>`).
pub fn quota_counter(key_id: &str) -> String {
    format!("quota-{key_id}")
}

/// The rate-limit counter of a key id.
pub fn rate_counter(key_id: &str) -> String {
    format!("rate-limit-{key_id}")
}

/// How raw keys map to storage keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyScheme {
    /// Store `apikey-<sha256(key)>` instead of `apikey-<key>` (Tyk's `hash_keys`, with
    /// `hash_key_function: sha256`), so the store never holds a usable key.
    pub hash_keys: bool,
}

impl KeyScheme {
    /// The part after `apikey-`: the key itself, or its hash.
    pub fn key_id(&self, raw_key: &str) -> String {
        if self.hash_keys { hash_key(raw_key) } else { raw_key.to_owned() }
    }

    pub fn storage_key(&self, raw_key: &str) -> String {
        let mut s = String::with_capacity(SESSION_PREFIX.len() + 64);
        s.push_str(SESSION_PREFIX);
        if self.hash_keys {
            s.push_str(&hash_key(raw_key));
        } else {
            s.push_str(raw_key);
        }
        s
    }
}

/// Lower-case hex SHA-256 of a key.
pub fn hash_key(raw_key: &str) -> String {
    hex(&Sha256::digest(raw_key.as_bytes()))
}

/// A short, non-reversible name for a key, safe to log.
pub fn key_hint(raw_key: &str) -> String {
    let mut h = hash_key(raw_key);
    h.truncate(12);
    h
}

/// A new key in Tyk's legacy format: the org id followed by 32 random hex digits.
pub fn generate_key(org_id: &str) -> String {
    format!("{org_id}{}", uuid::Uuid::new_v4().simple())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_storage_keys_hide_the_key() {
        let k = KeyScheme { hash_keys: true }.storage_key("secret-token");
        assert!(k.starts_with("apikey-") && !k.contains("secret-token"));
        assert_eq!(k.len(), 7 + 64);
        assert_eq!(KeyScheme { hash_keys: false }.storage_key("abc"), "apikey-abc");
        // A known SHA-256 vector.
        assert_eq!(hash_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn generated_keys_carry_the_org() {
        let k = generate_key("acme");
        assert!(k.starts_with("acme") && k.len() == 4 + 32);
        assert_ne!(generate_key("acme"), k);
    }
}
