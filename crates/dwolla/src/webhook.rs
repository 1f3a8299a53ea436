//! Webhook signatures (B7.2): `X-Request-Signature-SHA-256` is the lowercase
//! hex HMAC-SHA256 of the raw request body, keyed by the subscription secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::wire::Event;
use crate::{ExposeSecret, SecretString};

type HmacSha256 = Hmac<Sha256>;

/// Why a delivered webhook is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook carries no X-Request-Signature-SHA-256 header")]
    MissingSignature,
    #[error("the webhook signature does not match its body")]
    BadSignature,
    #[error("the webhook body is not a Dwolla event: {0}")]
    UnreadableEvent(String),
}

/// The signature Dwolla sends for `body` under `secret`.
pub fn sign_webhook(secret: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, body).finalize().into_bytes())
}

fn mac(secret: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    mac
}

/// Checks signed webhooks against the secret we gave the subscription.
#[derive(Clone, Debug)]
pub struct WebhookVerifier {
    secret: SecretString,
}

impl WebhookVerifier {
    pub fn new(secret: impl Into<SecretString>) -> Self {
        Self { secret: secret.into() }
    }

    /// Whether `signature` (hex, either case) signs `body`; compared in
    /// constant time.
    pub fn is_signed(&self, body: &[u8], signature: &str) -> bool {
        let Ok(expected) = hex::decode(signature.trim()) else {
            return false;
        };
        mac(self.secret.expose_secret(), body).verify_slice(&expected).is_ok()
    }

    /// The event of a delivery whose signature header is `signature`.
    pub fn verify(&self, body: &[u8], signature: Option<&str>) -> Result<Event, WebhookError> {
        let signature = signature.ok_or(WebhookError::MissingSignature)?;
        if !self.is_signed(body, signature) {
            return Err(WebhookError::BadSignature);
        }
        serde_json::from_slice(body).map_err(|error| WebhookError::UnreadableEvent(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_matches_the_rfc_4231_vector_and_only_its_body() {
        // RFC 4231 test case 2.
        let signature = sign_webhook("Jefe", b"what do ya want for nothing?");
        assert_eq!(signature, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let verifier = WebhookVerifier::new("Jefe");
        assert!(verifier.is_signed(b"what do ya want for nothing?", &signature.to_uppercase()));
        assert!(!verifier.is_signed(b"what do ya want for nothing!", &signature));
        assert!(!WebhookVerifier::new("jefe").is_signed(b"what do ya want for nothing?", &signature));
        assert!(!verifier.is_signed(b"", "not hex"));
    }
}
