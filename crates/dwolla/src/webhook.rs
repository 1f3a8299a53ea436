//! Webhook signatures (B7.2): `X-Request-Signature-SHA-256` is the lowercase
//! hex HMAC-SHA256 of the raw request body, keyed by the subscription secret.
//! And the topics of events, parsed into [`Topic`].

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

/// What an event is about, from its topic. The Account's topics (`transfer_completed`) and a
/// customer's (`customer_transfer_completed`) parse alike; a topic we do not act on is kept as
/// [`Topic::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// The customer was created or its verification moved on (`customer_created`,
    /// `customer_verified`, `customer_suspended`, `customer_verification_document_needed` …).
    Customer(CustomerTopic),
    FundingSourceAdded,
    FundingSourceRemoved,
    FundingSourceVerified,
    FundingSourceUnverified,
    FundingSourceUpdated,
    FundingSourceNegative,
    MicroDepositsAdded,
    MicroDepositsCompleted,
    MicroDepositsFailed,
    MicroDepositsMaxAttempts,
    /// A transfer or bank transfer changed (`created`, `completed`, `failed`, `cancelled` …).
    Transfer(TransferTopic),
    /// A topic we do not act on, as Dwolla wrote it.
    Unknown(String),
}

/// What happened to a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerTopic {
    Created,
    Verified,
    Suspended,
    Activated,
    Deactivated,
    Updated,
    ReverificationNeeded,
    VerificationDocumentNeeded,
    VerificationDocumentUploaded,
    VerificationDocumentFailed,
    VerificationDocumentApproved,
    KbaVerificationNeeded,
    KbaVerificationFailed,
    KbaVerificationPassed,
}

/// What happened to a transfer; `bank` for the `bank_transfer_*` topics (the leg between a
/// bank and the Dwolla balance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferTopic {
    pub bank: bool,
    pub event: TransferEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferEvent {
    Created,
    CreationFailed,
    Cancelled,
    Failed,
    Reclaimed,
    Completed,
}

impl Topic {
    /// The topic named `topic` (Dwolla's snake-case name, with or without `customer_`).
    pub fn parse(topic: &str) -> Topic {
        let name = topic.strip_prefix("customer_").unwrap_or(topic);
        let customer = Topic::Customer;
        let transfer = |bank, event| Topic::Transfer(TransferTopic { bank, event });
        match name {
            "created" => customer(CustomerTopic::Created),
            "verified" => customer(CustomerTopic::Verified),
            "suspended" => customer(CustomerTopic::Suspended),
            "activated" => customer(CustomerTopic::Activated),
            "deactivated" => customer(CustomerTopic::Deactivated),
            "updated" => customer(CustomerTopic::Updated),
            "reverification_needed" => customer(CustomerTopic::ReverificationNeeded),
            "verification_document_needed" => customer(CustomerTopic::VerificationDocumentNeeded),
            "verification_document_uploaded" => customer(CustomerTopic::VerificationDocumentUploaded),
            "verification_document_failed" => customer(CustomerTopic::VerificationDocumentFailed),
            "verification_document_approved" => customer(CustomerTopic::VerificationDocumentApproved),
            "kba_verification_needed" => customer(CustomerTopic::KbaVerificationNeeded),
            "kba_verification_failed" => customer(CustomerTopic::KbaVerificationFailed),
            "kba_verification_passed" => customer(CustomerTopic::KbaVerificationPassed),
            "funding_source_added" => Topic::FundingSourceAdded,
            "funding_source_removed" => Topic::FundingSourceRemoved,
            "funding_source_verified" => Topic::FundingSourceVerified,
            "funding_source_unverified" => Topic::FundingSourceUnverified,
            "funding_source_updated" => Topic::FundingSourceUpdated,
            "funding_source_negative" => Topic::FundingSourceNegative,
            "microdeposits_added" => Topic::MicroDepositsAdded,
            "microdeposits_completed" => Topic::MicroDepositsCompleted,
            "microdeposits_failed" => Topic::MicroDepositsFailed,
            "microdeposits_maxattempts" => Topic::MicroDepositsMaxAttempts,
            "transfer_created" => transfer(false, TransferEvent::Created),
            "transfer_cancelled" => transfer(false, TransferEvent::Cancelled),
            "transfer_failed" => transfer(false, TransferEvent::Failed),
            "transfer_reclaimed" => transfer(false, TransferEvent::Reclaimed),
            "transfer_completed" => transfer(false, TransferEvent::Completed),
            "bank_transfer_created" => transfer(true, TransferEvent::Created),
            "bank_transfer_creation_failed" => transfer(true, TransferEvent::CreationFailed),
            "bank_transfer_cancelled" => transfer(true, TransferEvent::Cancelled),
            "bank_transfer_failed" => transfer(true, TransferEvent::Failed),
            "bank_transfer_completed" => transfer(true, TransferEvent::Completed),
            _ => Topic::Unknown(topic.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_with_or_without_the_customer_prefix() {
        assert_eq!(Topic::parse("customer_verified"), Topic::Customer(CustomerTopic::Verified));
        assert_eq!(
            Topic::parse("customer_verification_document_needed"),
            Topic::Customer(CustomerTopic::VerificationDocumentNeeded)
        );
        assert_eq!(Topic::parse("funding_source_added"), Topic::FundingSourceAdded);
        assert_eq!(Topic::parse("customer_funding_source_added"), Topic::FundingSourceAdded);
        assert_eq!(Topic::parse("customer_microdeposits_maxattempts"), Topic::MicroDepositsMaxAttempts);
        assert_eq!(
            Topic::parse("customer_transfer_completed"),
            Topic::Transfer(TransferTopic { bank: false, event: TransferEvent::Completed })
        );
        assert_eq!(
            Topic::parse("customer_bank_transfer_failed"),
            Topic::Transfer(TransferTopic { bank: true, event: TransferEvent::Failed })
        );
        assert_eq!(
            Topic::parse("customer_beneficial_owner_created"),
            Topic::Unknown("customer_beneficial_owner_created".into())
        );
        assert_eq!(Topic::parse("transfer_"), Topic::Unknown("transfer_".into()));
        assert_eq!(Topic::parse(""), Topic::Unknown(String::new()));
    }

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
