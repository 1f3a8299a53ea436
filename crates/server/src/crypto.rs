//! Secrets handling: random tokens and their hashes, Argon2id passwords, and sealing of
//! personal data (SSNs, account numbers) with a key derived from the secret key.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

/// A new random token: 32 lowercase hex characters (128 bits).
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// What the database keeps of a token: its SHA-256, hex encoded.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Hash a password with Argon2id (default parameters) off the async threads.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await?
}

/// Check a password against a stored hash off the async threads. With no hash (unknown user)
/// a dummy hash is checked, so both cases cost the same time.
pub async fn verify_password(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return Ok(false);
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && ok)
    })
    .await?
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"not a real password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// A password nobody can type: accounts created without one (e.g. by a social sign-in).
pub fn unusable_password_hash() -> String {
    format!("!{}", new_token())
}

/// Authenticated encryption of small personal values (XChaCha20-Poly1305, random nonces).
#[derive(Clone)]
pub struct Sealer {
    cipher: Arc<XChaCha20Poly1305>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

const SEAL_PREFIX: &str = "v1.";

impl Sealer {
    /// Derive the data key from the secret key with HKDF-SHA256.
    pub fn from_secret(secret_key: &str) -> Sealer {
        let hk = Hkdf::<Sha256>::new(Some(b"donkies"), secret_key.as_bytes());
        let mut key = [0u8; 32];
        hk.expand(b"personal data at rest v1", &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Sealer {
            cipher: Arc::new(XChaCha20Poly1305::new(&key.into())),
        }
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let nonce_bytes = rand::random::<[u8; 24]>();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let ciphertext = self
            .cipher
            .encrypt(nonce, plaintext.as_bytes())
            .expect("XChaCha20-Poly1305 encryption of a short value cannot fail");
        let mut blob = nonce_bytes.to_vec();
        blob.extend_from_slice(&ciphertext);
        format!("{SEAL_PREFIX}{}", URL_SAFE_NO_PAD.encode(blob))
    }

    pub fn open(&self, sealed: &str) -> Option<String> {
        let blob = URL_SAFE_NO_PAD
            .decode(sealed.strip_prefix(SEAL_PREFIX)?)
            .ok()?;
        if blob.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = blob.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_lowercase_hex_and_unique() {
        let a = new_token();
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, new_token());
        assert_ne!(token_hash(&a), a);
        assert_eq!(token_hash(&a), token_hash(&a));
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let s = Sealer::from_secret("first secret key!!");
        let sealed = s.seal("123-45-6789");
        assert!(!sealed.contains("6789"));
        assert_ne!(sealed, s.seal("123-45-6789"), "random nonce");
        assert_eq!(s.open(&sealed).as_deref(), Some("123-45-6789"));
        assert_eq!(
            Sealer::from_secret("another secret key").open(&sealed),
            None
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        assert_eq!(s.open(&tampered), None);
    }

    #[tokio::test]
    async fn passwords_verify_only_when_right() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!verify_password("anything".into(), None).await.unwrap());
        assert!(
            !verify_password("anything".into(), Some(unusable_password_hash()))
                .await
                .unwrap()
        );
    }
}
