use std::collections::BTreeMap;

use async_trait::async_trait;
use donkies_domain::Cents;

use crate::wire::{
    Balance, Customer, CustomerQuery, CustomerUpdate, Event, FundingSource, MicroDeposits, NewCustomer,
    NewFundingSource, PageQuery, Root, Transfer, TransferFailure, WebhookSubscription,
};
use crate::{DwollaError, SecretString};

pub type Result<T, E = DwollaError> = std::result::Result<T, E>;

/// One page of a Dwolla list, and how many items the whole list holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// Where a transfer goes: current Dwolla takes only funding sources; the
/// 2016 API also took a customer or the Account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferDestination {
    FundingSource(String),
    Customer(String),
    Account(String),
}

/// A transfer to create: ids, not URLs; the client builds the links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    /// The funding source the money leaves (must be verified).
    pub source: String,
    pub destination: TransferDestination,
    pub amount: Cents,
    /// At most 10 pairs, each key and value under 255 characters.
    pub metadata: BTreeMap<String, String>,
    pub correlation_id: Option<String>,
}

impl TransferRequest {
    /// From one funding source to another, without metadata.
    pub fn between(source: &str, destination: &str, amount: Cents) -> Self {
        Self {
            source: source.to_owned(),
            destination: TransferDestination::FundingSource(destination.to_owned()),
            amount,
            metadata: BTreeMap::new(),
            correlation_id: None,
        }
    }

    pub fn with_metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// Moving money through Dwolla as Donkies does (PROVIDERS.md Part C).
///
/// [`crate::DwollaClient`] implements it over HTTP; services hold an
/// `Arc<dyn PaymentRail>`. Every method that creates something takes the
/// `idempotency_key` the caller derived from its own record, so that a
/// retried job gets the first answer instead of a second resource; creates
/// answer the new resource's id (the last segment of `Location`).
#[async_trait]
pub trait PaymentRail: Send + Sync {
    /// `GET /`: links to the Account and to customers.
    async fn root(&self) -> Result<Root>;
    /// The id of the app's master Account, from the root's `account` link.
    async fn account_id(&self) -> Result<String>;
    /// The Account's funding sources: its `Balance` and its banks.
    async fn account_funding_sources(&self, account_id: &str) -> Result<Vec<FundingSource>>;

    async fn create_customer(&self, customer: &NewCustomer, idempotency_key: &str) -> Result<String>;
    async fn customer(&self, customer_id: &str) -> Result<Customer>;
    /// Changes fields, upgrades an unverified customer, retries a
    /// verification or suspends (see [`CustomerUpdate`]).
    async fn update_customer(&self, customer_id: &str, update: &CustomerUpdate) -> Result<Customer>;
    async fn search_customers(&self, query: &CustomerQuery) -> Result<Page<Customer>>;

    async fn create_funding_source(
        &self,
        customer_id: &str,
        source: &NewFundingSource,
        idempotency_key: &str,
    ) -> Result<String>;
    async fn funding_source(&self, funding_source_id: &str) -> Result<FundingSource>;
    async fn customer_funding_sources(&self, customer_id: &str, include_removed: bool) -> Result<Vec<FundingSource>>;
    async fn rename_funding_source(&self, funding_source_id: &str, name: &str) -> Result<FundingSource>;
    /// Soft-deletes a bank (`{"removed": true}`); balances cannot be removed.
    async fn remove_funding_source(&self, funding_source_id: &str) -> Result<FundingSource>;
    async fn funding_source_balance(&self, funding_source_id: &str) -> Result<Balance>;

    async fn initiate_micro_deposits(&self, funding_source_id: &str, idempotency_key: &str) -> Result<()>;
    async fn micro_deposits(&self, funding_source_id: &str) -> Result<MicroDeposits>;
    async fn verify_micro_deposits(&self, funding_source_id: &str, amount1: Cents, amount2: Cents) -> Result<()>;

    /// A single-use token for Instant Account Verification in dwolla.js.
    async fn iav_token(&self, customer_id: &str) -> Result<SecretString>;

    async fn create_transfer(&self, transfer: &TransferRequest, idempotency_key: &str) -> Result<String>;
    async fn transfer(&self, transfer_id: &str) -> Result<Transfer>;
    async fn cancel_transfer(&self, transfer_id: &str) -> Result<Transfer>;
    /// The ACH return of a failed transfer.
    async fn transfer_failure(&self, transfer_id: &str) -> Result<TransferFailure>;
    /// Transfers to or from a customer, newest first: the periodic poll
    /// that backs up webhooks.
    async fn customer_transfers(&self, customer_id: &str, page: PageQuery) -> Result<Page<Transfer>>;

    async fn create_webhook_subscription(
        &self,
        url: &str,
        secret: &SecretString,
        idempotency_key: &str,
    ) -> Result<String>;
    async fn webhook_subscriptions(&self) -> Result<Vec<WebhookSubscription>>;
    /// A paused subscription gets no deliveries until resumed.
    async fn pause_webhook_subscription(&self, subscription_id: &str, paused: bool) -> Result<WebhookSubscription>;
    async fn delete_webhook_subscription(&self, subscription_id: &str) -> Result<WebhookSubscription>;

    async fn events(&self, page: PageQuery) -> Result<Page<Event>>;
    async fn event(&self, event_id: &str) -> Result<Event>;

    /// Sandbox only: processes pending bank transfers and micro-deposits;
    /// answers how many transfers were processed.
    async fn simulate_processing(&self) -> Result<u64>;

    /// The customer with exactly this email, if any.
    async fn customer_by_email(&self, email: &str) -> Result<Option<Customer>> {
        let query = CustomerQuery { email: Some(email.to_owned()), limit: Some(1), ..CustomerQuery::default() };
        let page = self.search_customers(&query).await?;
        Ok(page.items.into_iter().find(|customer| customer.email.eq_ignore_ascii_case(email)))
    }

    /// The Account's `Balance` funding source, where collected round-ups land
    /// unless configured otherwise.
    async fn account_balance_funding_source(&self) -> Result<FundingSource> {
        let account = self.account_id().await?;
        self.account_funding_sources(&account)
            .await?
            .into_iter()
            .find(|source| source.source_type == crate::wire::FundingSourceType::Balance && !source.removed)
            .ok_or_else(|| DwollaError::NotFound { message: "the Account has no balance funding source".into() })
    }
}
