//! The JSON of the Dwolla v2 API as serde structs (PROVIDERS.md Part B).
//!
//! The client reads these and the simulator in `donkies-sandbox` writes them,
//! so the two cannot drift. Reading is lenient: unknown fields are ignored,
//! later additions are optional, and an enum value this crate does not know
//! reads as `Other`. Money is [`Amount`], integer cents carried as Dwolla's
//! decimal string, never a float.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use donkies_domain::{Cents, SecretString};
use serde::{Deserialize, Serialize};

/// The vendor media type of every request and response (B1.2).
pub const MEDIA_TYPE: &str = "application/vnd.dwolla.v1.hal+json";
/// The header that makes a POST replay its first answer (B1.4).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// Hex HMAC-SHA256 of a webhook's raw body, keyed by the subscription secret.
pub const SIGNATURE_HEADER: &str = "X-Request-Signature-SHA-256";
/// The topic of a delivered webhook.
pub const TOPIC_HEADER: &str = "X-Dwolla-Topic";
/// The only currency Dwolla moves.
pub const USD: &str = "USD";

/// Serializes a [`SecretString`] as its plain text: only for bodies that
/// leave the process (a request, or the simulator's answer).
pub mod exposed {
    use donkies_domain::{ExposeSecret, SecretString};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(secret.expose_secret())
    }

    pub mod option {
        use donkies_domain::{ExposeSecret, SecretString};
        use serde::Serializer;

        pub fn serialize<S: Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
            match secret {
                Some(secret) => serializer.serialize_some(secret.expose_secret()),
                None => serializer.serialize_none(),
            }
        }
    }
}

fn empty_secret() -> SecretString {
    SecretString::from("")
}

/// A HAL link (B1.3). Current responses add the media and resource types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(rename = "resource-type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
}

impl Link {
    pub fn new(href: impl Into<String>) -> Self {
        Self { href: href.into(), media_type: None, resource_type: None }
    }

    /// A link as current Dwolla writes it, with its media and resource type.
    pub fn typed(href: impl Into<String>, resource_type: &str) -> Self {
        Self {
            href: href.into(),
            media_type: Some(MEDIA_TYPE.to_owned()),
            resource_type: Some(resource_type.to_owned()),
        }
    }

    /// The id at the end of the link: the last path segment.
    pub fn id(&self) -> Option<&str> {
        id_from_href(&self.href)
    }
}

/// `_links`: relation name → link.
pub type Links = BTreeMap<String, Link>;

/// The last path segment of a resource URL: Dwolla's way to name an id.
pub fn id_from_href(href: &str) -> Option<&str> {
    let path = href.split(['?', '#']).next().unwrap_or(href);
    path.trim_end_matches('/').rsplit('/').next().filter(|segment| !segment.is_empty() && !segment.contains(':'))
}

/// `{"value": "10.00", "currency": "USD"}` (B1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    pub value: Cents,
    #[serde(default = "usd")]
    pub currency: Currency,
}

/// Only USD exists; kept as a type so the JSON carries `"USD"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Currency {
    #[default]
    #[serde(rename = "USD", alias = "usd")]
    Usd,
}

fn usd() -> Currency {
    Currency::Usd
}

impl Amount {
    pub fn usd(value: Cents) -> Self {
        Self { value, currency: Currency::Usd }
    }
}

/// Declares a kebab-case string enum whose unknown values read as `Other`.
macro_rules! lenient_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name {
            $($variant,)+
            /// A value this client does not know.
            #[serde(other)]
            Other,
        }
    };
}

lenient_enum! {
    /// `type` of a customer (B2.1).
    CustomerType { Unverified, ReceiveOnly, Personal, Business }
}

lenient_enum! {
    /// `status` of a customer (B2.2).
    CustomerStatus { Unverified, Retry, Document, Verified, Suspended, Kba, Deactivated }
}

lenient_enum! {
    /// `status` of a funding source (B3.2).
    FundingSourceStatus { Unverified, Verified }
}

lenient_enum! {
    /// `type` of a funding source: a bank account or a Dwolla balance.
    FundingSourceType { Bank, Balance }
}

lenient_enum! {
    /// `bankAccountType` of a bank funding source.
    BankAccountType { Checking, Savings, GeneralLedger, Loan }
}

lenient_enum! {
    /// `status` of a transfer (B4.2).
    TransferStatus { Pending, Processed, Cancelled, Failed, Reclaimed }
}

lenient_enum! {
    /// `status` of a funding source's micro-deposits (B3.3).
    MicroDepositStatus { Pending, Processed, Failed }
}

impl TransferStatus {
    /// Whether the transfer will not change status any more (a `-late`
    /// sandbox return aside).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

// ---------------------------------------------------------------------------
// Token (B1.1)

/// The form body of `POST /token`; the credentials go in `Authorization:
/// Basic`, or (the 2016 variant) in `client_id`/`client_secret`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenRequest {
    pub grant_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "exposed::option::serialize")]
    pub client_secret: Option<SecretString>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    #[serde(serialize_with = "exposed::serialize")]
    pub access_token: SecretString,
    pub token_type: String,
    /// Seconds the token lives.
    pub expires_in: u64,
}

/// The OAuth error body of the token endpoint: `{"error": "invalid_client"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

// ---------------------------------------------------------------------------
// Errors (B8)

/// `{"code", "message", "_embedded": {"errors": [...]}, "_links"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(rename = "_embedded", default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<EmbeddedErrors>,
    #[serde(rename = "_links", default, skip_serializing_if = "Links::is_empty")]
    pub links: Links,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EmbeddedErrors {
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

/// One embedded error of a `ValidationError`: what is wrong where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// A JSON pointer into the request body, like `/email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

// ---------------------------------------------------------------------------
// Collections and the root

/// A HAL collection: `{"_links", "_embedded": {"<name>": [...]}, "total"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Collection<T> {
    #[serde(rename = "_links", default)]
    pub links: Links,
    #[serde(rename = "_embedded", default = "BTreeMap::new")]
    pub embedded: BTreeMap<String, Vec<T>>,
    /// Absent from some 2016 lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

impl<T> Collection<T> {
    pub fn new(name: &str, items: Vec<T>, total: u64, links: Links) -> Self {
        Self { links, embedded: BTreeMap::from([(name.to_owned(), items)]), total: Some(total) }
    }

    /// The items, whatever the collection's name.
    pub fn into_items(self) -> Vec<T> {
        self.embedded.into_values().flatten().collect()
    }
}

/// `GET /`: links to the app's Account and to customers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// The master Account (`GET /accounts/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    #[serde(rename = "_links", default)]
    pub links: Links,
    pub id: String,
    #[serde(default)]
    pub name: String,
}

// ---------------------------------------------------------------------------
// Customers (B2)

/// Where a verified customer lives, and their phone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Two-letter state code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Ten digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// The body of `POST /customers`, and of an upgrade with `POST /customers/{id}`.
/// Missing fields read as empty so that the simulator can answer Dwolla's
/// `Required` errors instead of a parse failure.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NewCustomer {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    /// Absent for an unverified customer.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub customer_type: Option<CustomerType>,
    #[serde(flatten)]
    pub details: CustomerDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// The fields beyond name and email: what verification needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomerDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_name: Option<String>,
    #[serde(flatten)]
    pub address: Address,
    /// `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    /// Last four digits, or all nine on a retry.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "exposed::option::serialize")]
    pub ssn: Option<SecretString>,
}

/// Address, birth date and SSN of a personal verified customer.
#[derive(Debug, Clone)]
pub struct PersonalDetails {
    pub address1: String,
    pub address2: Option<String>,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub date_of_birth: chrono::NaiveDate,
    pub ssn: SecretString,
    pub phone: Option<String>,
}

impl NewCustomer {
    fn named(first_name: &str, last_name: &str, email: &str, customer_type: Option<CustomerType>) -> Self {
        Self {
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            email: email.to_owned(),
            customer_type,
            ..Self::default()
        }
    }

    /// An unverified customer: name and email only; sends and receives up to
    /// the weekly limit, only with verified parties.
    pub fn unverified(first_name: &str, last_name: &str, email: &str) -> Self {
        Self::named(first_name, last_name, email, None)
    }

    /// A customer that can only receive money.
    pub fn receive_only(first_name: &str, last_name: &str, email: &str) -> Self {
        Self::named(first_name, last_name, email, Some(CustomerType::ReceiveOnly))
    }

    /// A personal verified customer; in the sandbox the `first_name` chooses
    /// the verification outcome (`retry`, `document`, `suspended`, `kba`).
    pub fn personal(first_name: &str, last_name: &str, email: &str, details: PersonalDetails) -> Self {
        Self {
            details: CustomerDetails {
                address: Address {
                    address1: Some(details.address1),
                    address2: details.address2,
                    city: Some(details.city),
                    state: Some(details.state),
                    postal_code: Some(details.postal_code),
                    phone: details.phone,
                },
                date_of_birth: Some(details.date_of_birth.format("%Y-%m-%d").to_string()),
                ssn: Some(details.ssn),
                ..CustomerDetails::default()
            },
            ..Self::named(first_name, last_name, email, Some(CustomerType::Personal))
        }
    }
}

/// The body of `POST /customers/{id}`: only the fields that change. A full
/// [`NewCustomer`] with `type: personal` upgrades an unverified customer or
/// retries a verification ([`CustomerUpdate::upgrade`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomerUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub customer_type: Option<CustomerType>,
    /// `suspended` suspends the customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub details: CustomerDetails,
}

impl CustomerUpdate {
    /// Every field of `customer`: upgrades an unverified customer to the
    /// customer's type, or retries a verification in `retry`.
    pub fn upgrade(customer: NewCustomer) -> Self {
        Self {
            first_name: Some(customer.first_name),
            last_name: Some(customer.last_name),
            email: Some(customer.email),
            customer_type: customer.customer_type,
            status: None,
            details: customer.details,
        }
    }

    /// Suspends the customer.
    pub fn suspend() -> Self {
        Self { status: Some("suspended".to_owned()), ..Self::default() }
    }
}

/// A customer as Dwolla shows it (B2.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    #[serde(rename = "_links", default)]
    pub links: Links,
    pub id: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub email: String,
    #[serde(rename = "type")]
    pub customer_type: CustomerType,
    pub status: CustomerStatus,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_name: Option<String>,
    #[serde(flatten)]
    pub address: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// Query of `GET /customers` (B2.3).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CustomerQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    /// Fuzzy match on names and email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Exact email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CustomerStatus>,
}

/// `limit` and `offset` of a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
}

// ---------------------------------------------------------------------------
// Funding sources (B3)

/// The body of `POST /customers/{id}/funding-sources`. `bankAccountType` is
/// the current name; 2016 called it `type`, read as an alias.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewFundingSource {
    #[serde(default)]
    pub routing_number: String,
    #[serde(default = "empty_secret", serialize_with = "exposed::serialize")]
    pub account_number: SecretString,
    #[serde(default, alias = "type", skip_serializing_if = "Option::is_none")]
    pub bank_account_type: Option<BankAccountType>,
    #[serde(default)]
    pub name: String,
}

impl NewFundingSource {
    pub fn bank(routing_number: &str, account_number: &str, bank_account_type: BankAccountType, name: &str) -> Self {
        Self {
            routing_number: routing_number.to_owned(),
            account_number: SecretString::from(account_number),
            bank_account_type: Some(bank_account_type),
            name: name.to_owned(),
        }
    }
}

/// A funding source (B3.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FundingSource {
    #[serde(rename = "_links", default)]
    pub links: Links,
    pub id: String,
    pub status: FundingSourceStatus,
    #[serde(rename = "type")]
    pub source_type: FundingSourceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account_type: Option<BankAccountType>,
    #[serde(default)]
    pub name: String,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub removed: bool,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<Amount>,
}

/// The body of `POST /funding-sources/{id}`: a new name, or `removed: true`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FundingSourceUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<bool>,
}

/// Query of `GET /customers/{id}/funding-sources`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct FundingSourceQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<bool>,
}

/// `GET /funding-sources/{id}/balance` of a balance funding source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    #[serde(rename = "_links", default)]
    pub links: Links,
    pub balance: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<DateTime<Utc>>,
}

/// `GET /funding-sources/{id}/micro-deposits`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MicroDeposits {
    #[serde(rename = "_links", default)]
    pub links: Links,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    pub status: MicroDepositStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ReturnCode>,
}

/// An ACH return: `{"code": "R03", "description": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnCode {
    pub code: String,
    #[serde(default)]
    pub description: String,
}

/// The body of a micro-deposit verification.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyMicroDeposits {
    pub amount1: Amount,
    pub amount2: Amount,
}

/// `POST /customers/{id}/iav-token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IavToken {
    #[serde(rename = "_links", default)]
    pub links: Links,
    #[serde(serialize_with = "exposed::serialize")]
    pub token: SecretString,
}

/// What the user types into the simulator's hosted IAV
/// (`POST /__sim/iav/{token}`); absent fields take a valid checking account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IavBankLogin {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "exposed::option::serialize")]
    pub account_number: Option<SecretString>,
    #[serde(alias = "type", skip_serializing_if = "Option::is_none")]
    pub bank_account_type: Option<BankAccountType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What dwolla.js hands its IAV callback: `{"_links": {"funding-source": …}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IavCompletion {
    #[serde(rename = "_links", default)]
    pub links: Links,
}

// ---------------------------------------------------------------------------
// Transfers (B4)

/// The body of `POST /transfers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewTransfer {
    /// `source` and `destination`.
    #[serde(rename = "_links", default)]
    pub links: Links,
    pub amount: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// A transfer (B4.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    #[serde(rename = "_links", default)]
    pub links: Links,
    pub id: String,
    pub status: TransferStatus,
    pub amount: Amount,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// The body of `POST /transfers/{id}`: `{"status": "cancelled"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferUpdate {
    pub status: String,
}

/// `GET /transfers/{id}/failure`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferFailure {
    #[serde(rename = "_links", default)]
    pub links: Links,
    pub code: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

// ---------------------------------------------------------------------------
// Webhooks, events, sandbox (B6, B7)

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewWebhookSubscription {
    pub url: String,
    #[serde(serialize_with = "exposed::serialize")]
    pub secret: SecretString,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookSubscription {
    #[serde(rename = "_links", default)]
    pub links: Links,
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub paused: bool,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookSubscriptionUpdate {
    pub paused: bool,
}

/// An event: `created` when read from `/events`, `timestamp` in a webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "_links", default)]
    pub links: Links,
    pub id: String,
    pub topic: String,
    pub resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// `POST /sandbox-simulations`: how many transfers were processed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSimulation {
    #[serde(rename = "_links", default)]
    pub links: Links,
    #[serde(default)]
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_last_segment_of_a_link() {
        assert_eq!(id_from_href("https://api.dwolla.com/customers/ab-12"), Some("ab-12"));
        assert_eq!(id_from_href("http://127.0.0.1:9/funding-sources/x/"), Some("x"));
        assert_eq!(id_from_href("mailto:a@b.c"), None);
    }

    #[test]
    fn unknown_statuses_read_as_other_and_money_reads_as_cents() {
        let transfer: Transfer = serde_json::from_value(serde_json::json!({
            "id": "t", "status": "teleported", "amount": {"value": "10.05", "currency": "USD"},
            "created": "2015-10-06T01:18:26.923Z"
        }))
        .unwrap();
        assert_eq!(transfer.status, TransferStatus::Other);
        assert_eq!(transfer.amount.value, Cents::new(1005));
    }

    #[test]
    fn the_2016_type_field_reads_as_bank_account_type() {
        let body: NewFundingSource =
            serde_json::from_str(r#"{"routingNumber":"222222226","accountNumber":"123","type":"savings","name":"n"}"#)
                .unwrap();
        assert_eq!(body.bank_account_type, Some(BankAccountType::Savings));
        assert!(!format!("{body:?}").contains("123"));
    }
}
