//! Secrets handling: random tokens and their hashes, Argon2id passwords, and sealing of
//! personal data (SSNs, account numbers) with a key derived from the secret key.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{
    Output, ParamsString, PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// Hash a password with Argon2id (default parameters) on the hashing threads.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    on_hash_pool(move |memory| hash_with(memory, password.as_bytes())).await?
}

/// Check a password against a stored hash on the hashing threads. With no hash (unknown user)
/// a dummy hash is checked, so both cases cost the same time.
pub async fn verify_password(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    on_hash_pool(move |memory| {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let ok = verify_with(memory, password.as_bytes(), &stored);
        known && ok
    })
    .await
}

type HashJob = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// A few long-lived threads, one per core, each reusing one Argon2 working area (19 MiB at
/// the default parameters). Hashing is CPU-bound, so more threads would not hash faster; and
/// fresh 19 MiB allocations per hash, spread over many blocking threads, leave the process
/// holding gigabytes under a login burst.
fn hash_pool() -> &'static std::sync::mpsc::Sender<HashJob> {
    static POOL: OnceLock<std::sync::mpsc::Sender<HashJob>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel::<HashJob>();
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
        for i in 0..threads {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                let mut memory: Vec<Block> = Vec::new();
                loop {
                    let job = match receiver.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(&mut memory),
                        Err(_) => return,
                    }
                }
            });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "could not start a password hashing thread");
            }
        }
        sender
    })
}

async fn on_hash_pool<T: Send + 'static>(
    work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    hash_pool()
        .send(Box::new(move |memory| {
            let _ = done.send(work(memory));
        }))
        .map_err(|_| anyhow::anyhow!("password hashing threads are gone"))?;
    Ok(result.await?)
}

/// Raw Argon2id output for `params` and `salt`, computed in `memory`.
fn argon2id(
    memory: &mut Vec<Block>,
    params: &Params,
    version: Version,
    password: &[u8],
    salt: &[u8],
    out_len: usize,
) -> Option<Vec<u8>> {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; out_len];
    Argon2::new(Algorithm::Argon2id, version, params.clone())
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..])
        .ok()?;
    Some(out)
}

fn hash_with(memory: &mut Vec<Block>, password: &[u8]) -> anyhow::Result<String> {
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let out_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let out = argon2id(memory, &params, Version::V0x13, password, salt_bytes, out_len)
        .ok_or_else(|| anyhow::anyhow!("argon2 hashing failed"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("params: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(phc.to_string())
}

fn verify_with(memory: &mut Vec<Block>, password: &[u8], stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Argon2::default().verify_password(password, &parsed).is_ok();
    }
    let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(&parsed), parsed.salt, parsed.hash) else {
        return false;
    };
    let version = parsed.version.and_then(|v| Version::try_from(v).ok()).unwrap_or(Version::V0x13);
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let Some(out) = argon2id(memory, &params, version, password, salt_bytes, expected.len()) else {
        return false;
    };
    // `Output` compares in constant time.
    Output::new(&out).is_ok_and(|actual| actual == expected)
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(b"not a real password", &salt).map(|h| h.to_string()).unwrap_or_default()
    })
}

/// A password nobody can type: accounts created without one (e.g. by a social sign-in).
pub fn unusable_password_hash() -> String {
    format!("!{}", new_token())
}

/// How long a signed OAuth `state` is accepted.
const STATE_TTL_SECONDS: i64 = 3600;

/// A secret for one purpose, derived from the server's secret key (HKDF-SHA256), so that
/// leaking it reveals nothing of the key or of secrets for other purposes.
pub fn derive_secret(secret_key: &str, purpose: &str) -> String {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(b"donkies derived secret"), secret_key.as_bytes())
        .expand(purpose.as_bytes(), &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    hex::encode(out)
}

/// A keyed digest of a bank account number: equal numbers give equal digests, and the digest
/// reveals nothing of the number without the key (`derive_secret(…, "account number digest")`).
pub fn account_number_digest(key: &str, number: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(number.trim().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn state_mac(secret_key: &str, timestamp: i64) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"oauth state ");
    mac.update(timestamp.to_string().as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// An OAuth `state` value the server can later recognise as its own: a time and its MAC.
pub fn sign_state(secret_key: &str) -> String {
    let t = chrono::Utc::now().timestamp();
    format!("{t}.{}", state_mac(secret_key, t))
}

/// Whether `state` came from [`sign_state`] within the last hour.
pub fn verify_state(secret_key: &str, state: &str) -> bool {
    use subtle::ConstantTimeEq;
    let Some((t, mac)) = state.split_once('.') else {
        return false;
    };
    let Ok(t) = t.parse::<i64>() else {
        return false;
    };
    let age = chrono::Utc::now().timestamp() - t;
    (0..=STATE_TTL_SECONDS).contains(&age) && bool::from(state_mac(secret_key, t).as_bytes().ct_eq(mac.as_bytes()))
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
        hk.expand(b"personal data at rest v1", &mut key).expect("32 bytes is a valid HKDF-SHA256 output length");
        Sealer { cipher: Arc::new(XChaCha20Poly1305::new(&key.into())) }
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
        let blob = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(SEAL_PREFIX)?).ok()?;
        if blob.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = blob.split_at(24);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), ciphertext).ok()?;
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
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, new_token());
        assert_ne!(token_hash(&a), a);
        assert_eq!(token_hash(&a), token_hash(&a));
    }

    #[test]
    fn signed_states_verify_only_with_the_same_key_and_unaltered() {
        let state = sign_state("key one, long enough");
        assert!(verify_state("key one, long enough", &state));
        assert!(!verify_state("key two, long enough", &state));
        let (t, mac) = state.split_once('.').unwrap();
        assert!(!verify_state("key one, long enough", &format!("{}.{mac}", t.parse::<i64>().unwrap() - 1)));
        assert!(!verify_state("key one, long enough", "12345"));
        let old = chrono::Utc::now().timestamp() - 2 * STATE_TTL_SECONDS;
        assert!(!verify_state("key one, long enough", &format!("{old}.{}", state_mac("key one, long enough", old))));
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let s = Sealer::from_secret("first secret key!!");
        let sealed = s.seal("123-45-6789");
        assert!(!sealed.contains("6789"));
        assert_ne!(sealed, s.seal("123-45-6789"), "random nonce");
        assert_eq!(s.open(&sealed).as_deref(), Some("123-45-6789"));
        assert_eq!(Sealer::from_secret("another secret key").open(&sealed), None);
        let mut tampered = sealed.clone();
        tampered.pop();
        assert_eq!(s.open(&tampered), None);
    }

    #[tokio::test]
    async fn pooled_hashes_are_standard_phc_strings_both_ways() {
        let hash = hash_password("pw123456".into()).await.unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default().verify_password(b"pw123456", &parsed).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let standard = Argon2::default().hash_password(b"other pw", &salt).unwrap().to_string();
        assert!(verify_password("other pw".into(), Some(standard.clone())).await.unwrap());
        assert!(!verify_password("other pX".into(), Some(standard)).await.unwrap());
    }

    #[tokio::test]
    async fn passwords_verify_only_when_right() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(hash.clone())).await.unwrap());
        assert!(!verify_password("wrong horse".into(), Some(hash)).await.unwrap());
        assert!(!verify_password("anything".into(), None).await.unwrap());
        assert!(!verify_password("anything".into(), Some(unusable_password_hash())).await.unwrap());
    }
}
