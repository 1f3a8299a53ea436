//! Payments through Dwolla: the user's customer, funding sources (micro-deposits and IAV), the
//! round-up source, transfers tracked to their end, and Dwolla's webhooks.

use donkies_domain::ExposeSecret;
use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use donkies_domain::{
    AccountFamily, BankAccountType, Cents, CustomerKind, CustomerStatus, FundingSourceStatus, FundingSourceType,
    MicroDepositStatus, TransferParty, TransferStatus, VerificationType, check_transfer, return_consequences,
};
use donkies_dwolla::wire::{self, PersonalDetails};
use donkies_dwolla::{DwollaError, PaymentRail, SecretString, Topic, TransferRequest};
use donkies_outbound::ProviderFailure;
use donkies_store::payments::{self, Customer, FundingSource, NewCustomer, NewFundingSource, NewTransfer, Transfer};
use donkies_store::users::User;
use donkies_store::{accounts, constraints, new_id, now, users};
use serde::Serialize;

use super::outbox::queue_mail;
use super::settings::PaymentsSettings;
use super::{OnConstraint, ServiceError, ServiceResult, Storage, Work};
use crate::crypto::Sealer;
use crate::jobs::payments::{ApplyDwollaEvent, CreateDwollaCustomer, CreateDwollaFundingSource, SendTransfer};
use crate::mail;

/// A Dwolla failure in the terms of a use case.
impl From<DwollaError> for ServiceError {
    fn from(err: DwollaError) -> Self {
        let refused = err.message().to_owned();
        ServiceError::provider(
            err.failure(),
            "The payment service is unavailable. Please try again later.",
            refused,
            err,
        )
    }
}

/// Where a transfer may go, found before its amount is known: [`PaymentsService::route`].
#[derive(Debug, Clone)]
pub struct Route {
    from: String,
    to: String,
    user_id: Option<i64>,
}

impl Route {
    /// The transfer of `amount` (positive) along this route.
    pub fn carrying(self, amount: Cents) -> PreparedTransfer {
        PreparedTransfer { from: self.from, to: self.to, user_id: self.user_id, amount }
    }
}

/// A transfer whose parties were checked, ready to record.
#[derive(Debug, Clone)]
pub struct PreparedTransfer {
    /// The Dwolla ids of the funding sources the money leaves and reaches.
    pub from: String,
    pub to: String,
    pub user_id: Option<i64>,
    pub amount: Cents,
}

/// A customer requested with `POST /v1/customer`.
pub struct CustomerRequest {
    pub kind: CustomerKind,
    pub profile: Option<PersonalProfile>,
}

/// The fields of a personal (verified) customer.
pub struct PersonalProfile {
    pub address1: String,
    pub address2: Option<String>,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub date_of_birth: chrono::NaiveDate,
    /// Nine digits.
    pub ssn: String,
    pub phone: Option<String>,
}

/// A bank account to add with micro-deposits (numbers already checked at the edge).
pub struct BankRequest {
    pub account_id: i64,
    pub account_number: String,
    pub routing_number: String,
    pub name: String,
    pub kind: BankAccountType,
}

/// One end of a transfer.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// The Donkies master Account (its configured or balance funding source).
    Donkies,
    /// One of our stored funding sources.
    FundingSource(i64),
}

fn verification_failed() -> ServiceError {
    ServiceError::invalid("The micro-deposit amounts are not correct.")
}

/// The payments use cases, with what they reach: storage, the payment rail and the sealer,
/// never the aggregator or the sign-in providers.
#[derive(Clone)]
pub struct PaymentsService(Arc<PaymentsInner>);

pub struct PaymentsInner {
    pub store: Storage,
    pub rail: Arc<dyn PaymentRail>,
    pub sealer: Sealer,
    pub settings: PaymentsSettings,
    /// The Dwolla funding source collections land in, once looked up.
    donkies_funding_source: tokio::sync::OnceCell<String>,
}

impl Deref for PaymentsService {
    type Target = PaymentsInner;
    fn deref(&self) -> &PaymentsInner {
        &self.0
    }
}

impl PaymentsService {
    pub fn new(store: Storage, rail: Arc<dyn PaymentRail>, sealer: Sealer, settings: PaymentsSettings) -> Self {
        let donkies_funding_source = tokio::sync::OnceCell::new();
        PaymentsService(Arc::new(PaymentsInner { store, rail, sealer, settings, donkies_funding_source }))
    }

    /// The user's customer, if any.
    pub async fn customer(&self, user_id: i64) -> ServiceResult<Option<Customer>> {
        Ok(payments::customer_of_user(&self.store.db, user_id).await?)
    }

    /// After a profile change, inside its `work`: a user whose profile is complete gets a
    /// personal (verified) customer, created at Dwolla by a job — as the original system did.
    pub async fn ensure_personal_customer(&self, work: &mut Work, user: &User) -> ServiceResult<()> {
        if !user.is_profile_completed || payments::customer_of_user(&mut **work, user.id).await?.is_some() {
            return Ok(());
        }
        let ssn = match &user.ssn_encrypted {
            Some(sealed) => self.sealer.open(sealed),
            None => None,
        };
        let Some(ssn) = ssn else {
            return Err(anyhow::anyhow!("completed profile of user {} has no readable SSN", user.id).into());
        };
        let profile = PersonalProfile {
            address1: user.address1.clone().unwrap_or_default(),
            address2: user.address2.clone().filter(|a| !a.is_empty()),
            city: user.city.clone().unwrap_or_default(),
            state: user.state.clone().unwrap_or_default(),
            postal_code: user.postal_code.clone().unwrap_or_default(),
            date_of_birth: user.date_of_birth.context("completed profile without a date of birth")?,
            ssn,
            phone: user.phone.clone(),
        };
        let request = CustomerRequest { kind: CustomerKind::Personal, profile: Some(profile) };
        self.record_customer(work, user, request).await?;
        Ok(())
    }

    /// Record a customer for the user and create it at Dwolla in the background.
    pub async fn create_customer(&self, user: &User, request: CustomerRequest) -> ServiceResult<Customer> {
        let mut work = self.store.begin().await?;
        let id = self.record_customer(&mut work, user, request).await?;
        work.commit().await?;
        payments::customer_by_id(&self.store.db, id).await?.ok_or(ServiceError::NotFound)
    }

    /// Record a customer for the user in `work`, with the job that creates it at Dwolla; its id.
    async fn record_customer(&self, work: &mut Work, user: &User, request: CustomerRequest) -> ServiceResult<i64> {
        let id = new_id();
        let profile = request.profile.as_ref();
        let sealed = profile.map(|p| self.sealer.seal(&p.ssn));
        let last4 = profile.map(|p| p.ssn[p.ssn.len().saturating_sub(4)..].to_owned());
        let new = NewCustomer {
            id,
            user_id: user.id,
            kind: request.kind,
            first_name: &user.first_name,
            last_name: &user.last_name,
            email: &user.email,
            address1: profile.map(|p| p.address1.as_str()),
            address2: profile.and_then(|p| p.address2.as_deref()),
            city: profile.map(|p| p.city.as_str()),
            state: profile.map(|p| p.state.as_str()),
            postal_code: profile.map(|p| p.postal_code.as_str()),
            date_of_birth: profile.map(|p| p.date_of_birth),
            ssn_encrypted: sealed.as_deref(),
            ssn_last4: last4.as_deref(),
            phone: profile.and_then(|p| p.phone.as_deref()),
            now: now(),
        };
        payments::insert_customer(work, &new)
            .await
            .on_constraint(constraints::CUSTOMERS_USER_ID, || ServiceError::invalid("The customer already exists."))?;
        work.enqueue(&CreateDwollaCustomer { customer_id: id }, Duration::ZERO).await?;
        tracing::info!(user = user.id, customer = id, kind = request.kind.as_str(), "customer recorded");
        Ok(id)
    }

    /// The `create_dwolla_customer` job: create (or find, by email) the customer at Dwolla.
    pub async fn create_dwolla_customer(&self, customer_id: i64) -> ServiceResult<()> {
        let Some(customer) = payments::customer_by_id(&self.store.db, customer_id).await? else {
            return Ok(());
        };
        if customer.dwolla_id.is_some() {
            return Ok(());
        }
        let new = match customer.kind {
            CustomerKind::Unverified => {
                wire::NewCustomer::unverified(&customer.first_name, &customer.last_name, &customer.email)
            }
            CustomerKind::ReceiveOnly => {
                wire::NewCustomer::receive_only(&customer.first_name, &customer.last_name, &customer.email)
            }
            CustomerKind::Personal => {
                let ssn = customer
                    .ssn_encrypted
                    .as_deref()
                    .and_then(|s| self.sealer.open(s))
                    .context("customer SSN unreadable")?;
                let details = PersonalDetails {
                    address1: customer.address1.clone().unwrap_or_default(),
                    address2: customer.address2.clone(),
                    city: customer.city.clone().unwrap_or_default(),
                    state: customer.state.clone().unwrap_or_default(),
                    postal_code: customer.postal_code.clone().unwrap_or_default(),
                    date_of_birth: customer.date_of_birth.context("personal customer without a birth date")?,
                    ssn: SecretString::from(ssn),
                    phone: customer.phone.clone(),
                };
                wire::NewCustomer::personal(&customer.first_name, &customer.last_name, &customer.email, details)
            }
        };
        let dwolla_id = match self.rail.create_customer(&new, &format!("customer-{customer_id}")).await {
            Ok(id) => id,
            // The email is known at Dwolla already: that customer is this user's.
            Err(DwollaError::Duplicate { .. }) => {
                self.rail.customer_by_email(&customer.email).await?.context("duplicate email but no customer found")?.id
            }
            Err(e) => return Err(e.into()),
        };
        let found = self.rail.customer(&dwolla_id).await?;
        let status = CustomerStatus::parse(&wire_text(&found.status));
        let mut work = self.store.begin().await?;
        payments::set_customer_dwolla(&mut work, customer_id, &dwolla_id, &status, now()).await?;
        work.commit().await?;
        tracing::info!(customer = customer_id, dwolla = %dwolla_id, status = status.as_str(), "customer created at Dwolla");
        Ok(())
    }

    /// The user's funding sources.
    pub async fn funding_sources(&self, user_id: i64) -> ServiceResult<Vec<FundingSource>> {
        Ok(payments::funding_sources_of_user(&self.store.db, user_id).await?)
    }

    pub async fn funding_source(&self, user_id: i64, id: i64) -> ServiceResult<FundingSource> {
        payments::funding_source(&self.store.db, user_id, id).await?.ok_or(ServiceError::NotFound)
    }

    /// A customer at Dwolla is needed before a bank can be added.
    async fn dwolla_customer(&self, user_id: i64) -> ServiceResult<(Customer, String)> {
        let customer = payments::customer_of_user(&self.store.db, user_id).await?;
        match customer {
            Some(c) => match c.dwolla_id.clone() {
                Some(id) => Ok((c, id)),
                None => {
                    Err(ServiceError::invalid("The customer is still being created at Dwolla; try again in a moment."))
                }
            },
            None => Err(ServiceError::invalid("Complete the profile (or create a customer) first.")),
        }
    }

    /// A debit account of the user, to take round-ups from.
    async fn debit_account(&self, user_id: i64, account_id: i64) -> ServiceResult<donkies_store::accounts::Account> {
        let account = accounts::get(&self.store.db, user_id, account_id)
            .await?
            .ok_or_else(|| ServiceError::field("account_id", "Choose one of your accounts."))?;
        if account.type_ds != AccountFamily::Debit {
            return Err(ServiceError::field("account_id", "Choose a checking or savings account."));
        }
        Ok(account)
    }

    /// Add a bank by its numbers; the micro-deposits start in the background.
    pub async fn add_bank(&self, user_id: i64, bank: BankRequest) -> ServiceResult<FundingSource> {
        let account = self.debit_account(user_id, bank.account_id).await?;
        let (customer, _) = self.dwolla_customer(user_id).await?;
        let id = new_id();
        let sealed = self.sealer.seal(&bank.account_number);
        let last4 = &bank.account_number[bank.account_number.len().saturating_sub(4)..];
        let new = NewFundingSource {
            id,
            user_id,
            account_id: account.id,
            customer_id: customer.id,
            dwolla_id: None,
            account_number_encrypted: Some(&sealed),
            account_number_last4: Some(last4),
            routing_number: Some(&bank.routing_number),
            status: FundingSourceStatus::Unverified,
            bank_account_type: bank.kind,
            source_type: FundingSourceType::Bank,
            name: &bank.name,
            verification_type: VerificationType::MicroDeposits,
            now: now(),
        };
        let mut work = self.store.begin().await?;
        payments::insert_funding_source(&mut work, &new)
            .await
            .on_constraint(constraints::FUNDING_SOURCES_ACCOUNT_ID, || {
                ServiceError::field("account_id", "This account has a funding source already.")
            })?;
        work.enqueue(&CreateDwollaFundingSource { funding_source_id: id }, Duration::ZERO).await?;
        work.commit().await?;
        self.funding_source(user_id, id).await
    }

    /// The `create_dwolla_funding_source` job: the bank at Dwolla, then its micro-deposits.
    pub async fn create_dwolla_funding_source(&self, funding_source_id: i64) -> ServiceResult<()> {
        let Some(source) = payments::funding_source_by_id(&self.store.db, funding_source_id).await? else {
            return Ok(());
        };
        if source.is_removed {
            return Ok(());
        }
        let customer = payments::customer_by_id(&self.store.db, source.customer_id)
            .await?
            .context("funding source without customer")?;
        let Some(customer_dwolla) = customer.dwolla_id else {
            return Err(anyhow::anyhow!("customer {} is not at Dwolla yet", customer.id).into());
        };
        let dwolla_id = match &source.dwolla_id {
            Some(id) => id.clone(),
            None => {
                let number = source
                    .account_number_encrypted
                    .as_deref()
                    .and_then(|s| self.sealer.open(s))
                    .context("account number unreadable")?;
                let bank = wire::NewFundingSource::bank(
                    source.routing_number.as_deref().unwrap_or_default(),
                    &number,
                    wire_bank_type(source.bank_account_type),
                    &source.name,
                );
                let key = format!("funding-source-{funding_source_id}");
                let id = match self.rail.create_funding_source(&customer_dwolla, &bank, &key).await {
                    Ok(id) => id,
                    Err(DwollaError::Duplicate { existing: Some(href), .. }) => {
                        wire::id_from_href(&href).context("duplicate bank link without id")?.to_owned()
                    }
                    Err(e) => return Err(e.into()),
                };
                let found = self.rail.funding_source(&id).await?;
                let status =
                    FundingSourceStatus::parse(&wire_text(&found.status)).unwrap_or(FundingSourceStatus::Unverified);
                let mut work = self.store.begin().await?;
                payments::set_funding_source_dwolla(&mut work, funding_source_id, &id, status, now())
                    .await
                    .on_constraint(constraints::FUNDING_SOURCES_DWOLLA_ID, || {
                        ServiceError::invalid("This bank is already one of the user's funding sources.")
                    })?;
                work.commit().await?;
                id
            }
        };
        if source.md_status.is_none() {
            let key = format!("micro-deposits-{funding_source_id}");
            match self.rail.initiate_micro_deposits(&dwolla_id, &key).await {
                Ok(()) | Err(DwollaError::InvalidResourceState { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let mut work = self.store.begin().await?;
            payments::set_micro_deposits(&mut work, funding_source_id, Some(&MicroDepositStatus::Pending), 0, now())
                .await?;
            work.commit().await?;
        }
        Ok(())
    }

    /// Verify a bank with the two micro-deposit amounts.
    pub async fn verify_micro_deposits(
        &self,
        user_id: i64,
        id: i64,
        amount1: Cents,
        amount2: Cents,
    ) -> ServiceResult<FundingSource> {
        let source = self.funding_source(user_id, id).await?;
        if source.status == FundingSourceStatus::Verified {
            return Err(ServiceError::invalid("The funding source is verified already."));
        }
        if source.md_status == Some(MicroDepositStatus::MaxAttempts) {
            return Err(ServiceError::invalid("Too many attempts: remove the bank and add it again."));
        }
        let Some(dwolla_id) = source.dwolla_id.clone() else {
            return Err(ServiceError::invalid("The micro-deposits have not been sent yet; try again in a moment."));
        };
        let verified = match self.rail.verify_micro_deposits(&dwolla_id, amount1, amount2).await {
            // A verification Dwolla took whose record here failed: the retry finds the bank
            // verified there, and records it now.
            Err(DwollaError::InvalidResourceState { message, code }) => {
                let found = self.rail.funding_source(&dwolla_id).await?;
                if FundingSourceStatus::parse(&wire_text(&found.status)) == Some(FundingSourceStatus::Verified) {
                    Ok(())
                } else {
                    Err(DwollaError::InvalidResourceState { message, code })
                }
            }
            other => other,
        };
        match verified {
            Ok(()) => {
                // The bank is verified and its micro-deposits done, together.
                let mut work = self.store.begin().await?;
                payments::set_funding_source_status(&mut work, id, FundingSourceStatus::Verified, now()).await?;
                payments::set_micro_deposits(
                    &mut work,
                    id,
                    Some(&MicroDepositStatus::Processed),
                    source.md_attempts + 1,
                    now(),
                )
                .await?;
                work.commit().await?;
                self.funding_source(user_id, id).await
            }
            Err(DwollaError::Validation { .. }) => {
                let attempts = source.md_attempts + 1;
                let status = if attempts >= 3 { MicroDepositStatus::MaxAttempts } else { MicroDepositStatus::Failed };
                let mut work = self.store.begin().await?;
                payments::set_micro_deposits(&mut work, id, Some(&status), attempts, now()).await?;
                work.commit().await?;
                Err(if attempts >= 3 {
                    ServiceError::invalid(
                        "The amounts are not correct, and that was the last attempt: remove the bank and add it again.",
                    )
                } else {
                    verification_failed()
                })
            }
            Err(DwollaError::InvalidResourceState { message, .. }) => {
                if message.to_ascii_lowercase().contains("attempts") {
                    let mut work = self.store.begin().await?;
                    payments::set_micro_deposits(
                        &mut work,
                        id,
                        Some(&MicroDepositStatus::MaxAttempts),
                        source.md_attempts.max(3),
                        now(),
                    )
                    .await?;
                    work.commit().await?;
                }
                Err(ServiceError::invalid(message))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A single-use IAV token for the user's own, verified customer.
    pub async fn iav_token(&self, user_id: i64, dwolla_customer_id: &str) -> ServiceResult<String> {
        let customer = payments::customer_of_user(&self.store.db, user_id).await?;
        let Some(customer) = customer.filter(|c| c.dwolla_id.as_deref() == Some(dwolla_customer_id)) else {
            return Err(ServiceError::NotFound);
        };
        if customer.status != Some(CustomerStatus::Verified) {
            return Err(ServiceError::invalid("The customer is not verified."));
        }
        Ok(self.rail.iav_token(dwolla_customer_id).await?.expose_secret().to_owned())
    }

    /// Link the funding source the user just added through Dwolla's IAV to a debit account.
    pub async fn funding_source_from_iav(
        &self,
        user_id: i64,
        account_id: i64,
        dwolla_id: &str,
    ) -> ServiceResult<FundingSource> {
        let account = self.debit_account(user_id, account_id).await?;
        let (customer, customer_dwolla) = self.dwolla_customer(user_id).await?;
        // Someone else's funding source gets the same answer as one that does not exist: the
        // answer must not tell that an id is in use.
        let unknown = || ServiceError::field("dwolla_id", "No such funding source at Dwolla.");
        let found = match self.rail.funding_source(dwolla_id).await {
            Ok(f) => f,
            Err(DwollaError::NotFound { .. }) => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        let owner = found.links.get("customer").and_then(|l| l.id()).map(str::to_owned);
        if owner.as_deref() != Some(customer_dwolla.as_str()) || found.removed {
            return Err(unknown());
        }
        let id = new_id();
        let status = FundingSourceStatus::parse(&wire_text(&found.status)).unwrap_or(FundingSourceStatus::Unverified);
        let kind = found.bank_account_type.map_or(BankAccountType::Checking, domain_bank_type);
        let new = NewFundingSource {
            id,
            user_id,
            account_id: account.id,
            customer_id: customer.id,
            dwolla_id: Some(dwolla_id),
            account_number_encrypted: None,
            account_number_last4: None,
            routing_number: None,
            status,
            bank_account_type: kind,
            source_type: FundingSourceType::Bank,
            name: &found.name,
            verification_type: VerificationType::Iav,
            now: now(),
        };
        let mut work = self.store.begin().await?;
        payments::insert_funding_source(&mut work, &new)
            .await
            .on_constraint(constraints::FUNDING_SOURCES_ACCOUNT_ID, || {
                ServiceError::field("account_id", "This account has a funding source already.")
            })
            .on_constraint(constraints::FUNDING_SOURCES_DWOLLA_ID, || {
                ServiceError::field("dwolla_id", "This funding source is linked already.")
            })?;
        accounts::set_dwolla_created(&mut work, user_id, account.id, true, now()).await?;
        work.commit().await?;
        self.funding_source(user_id, id).await
    }

    /// Make the debit account with a verified funding source the one round-ups come from.
    pub async fn set_round_up_source(&self, user_id: i64, account_id: i64) -> ServiceResult<()> {
        let account = accounts::get(&self.store.db, user_id, account_id).await?.ok_or(ServiceError::NotFound)?;
        let source = payments::funding_source_of_account(&self.store.db, user_id, account.id).await?;
        if !source.is_some_and(|s| s.status == FundingSourceStatus::Verified) {
            return Err(ServiceError::invalid("The account has no verified funding source."));
        }
        let mut work = self.store.begin().await?;
        accounts::set_funding_source_for_transfer(&mut work, user_id, account.id, now()).await?;
        work.commit().await?;
        Ok(())
    }

    /// The funding source round-ups are collected from, when the user has set one.
    pub async fn round_up_source(&self, user_id: i64) -> ServiceResult<Option<FundingSource>> {
        Ok(donkies_store::money_batch::round_up_sources(&self.store.db, &[user_id]).await?.remove(&user_id))
    }

    /// Where money for Donkies lands: the configured funding source, else the Account's
    /// balance.
    pub async fn donkies_funding_source(&self) -> ServiceResult<String> {
        if let Some(id) = &self.settings.account_funding_source {
            return Ok(id.clone());
        }
        let id = self
            .donkies_funding_source
            .get_or_try_init(|| async { self.rail.account_balance_funding_source().await.map(|f| f.id) })
            .await?;
        Ok(id.clone())
    }

    async fn party(&self, endpoint: &Endpoint) -> ServiceResult<(TransferParty, String, Option<i64>)> {
        match endpoint {
            Endpoint::Donkies => Ok((TransferParty::Account, self.donkies_funding_source().await?, None)),
            Endpoint::FundingSource(id) => {
                let source =
                    payments::funding_source_by_id(&self.store.db, *id).await?.ok_or(ServiceError::NotFound)?;
                if source.is_removed || source.status != FundingSourceStatus::Verified {
                    return Err(ServiceError::invalid("The funding source is not verified."));
                }
                let customer = payments::customer_by_id(&self.store.db, source.customer_id).await?;
                source_party(&source, customer.as_ref())
            }
        }
    }

    /// Move `amount` from `source` to `destination`, once per `reference` (the caller's own
    /// record, e.g. `collection:<id>`): the permission rules are checked first (a refused pair
    /// never reaches Dwolla), then the transfer is recorded and sent by a job with an
    /// idempotency key of its own row, so a retry or a crash never makes a second one.
    pub async fn transfer(
        &self,
        reference: &str,
        source: Endpoint,
        destination: Endpoint,
        amount: Cents,
    ) -> ServiceResult<Transfer> {
        if let Some(existing) = payments::transfer_by_reference(&self.store.db, reference).await? {
            return Ok(existing);
        }
        let prepared = self.prepare_transfer(source, destination, amount).await?;
        let mut work = self.store.begin().await?;
        let inserted = self.record_transfer(&mut work, reference, &prepared).await;
        let id = match inserted {
            Err(ServiceError::Store(e)) if e.on_constraint(constraints::TRANSFERS_REFERENCE) => {
                drop(work);
                return payments::transfer_by_reference(&self.store.db, reference).await?.ok_or(ServiceError::NotFound);
            }
            other => other?,
        };
        work.commit().await?;
        payments::transfer_by_id(&self.store.db, id).await?.ok_or(ServiceError::NotFound)
    }

    /// Check that `source` may send `amount` to `destination` and find both at Dwolla; nothing
    /// is written.
    pub async fn prepare_transfer(
        &self,
        source: Endpoint,
        destination: Endpoint,
        amount: Cents,
    ) -> ServiceResult<PreparedTransfer> {
        if amount <= Cents::ZERO {
            return Err(ServiceError::invalid("A transfer moves a positive amount."));
        }
        Ok(self.route(source, destination).await?.carrying(amount))
    }

    /// Check that `source` may send money to `destination` and find both at Dwolla (which may
    /// ask Dwolla: call it before a transaction opens); nothing is written.
    pub async fn route(&self, source: Endpoint, destination: Endpoint) -> ServiceResult<Route> {
        let (from, from_id, from_user) = self.party(&source).await?;
        let (to, to_id, to_user) = self.party(&destination).await?;
        if let Err(refusal) = check_transfer(&from, &to) {
            tracing::warn!(%refusal, "transfer refused before reaching Dwolla");
            return Err(ServiceError::invalid(format!("Transfer refused: {refusal}")));
        }
        Ok(Route { from: from_id, to: to_id, user_id: from_user.or(to_user) })
    }

    /// [`PaymentsService::route`] between Donkies and each of many funding sources (`to_donkies`:
    /// from the source to Donkies, else from Donkies to the source), with their customers read
    /// before (`customers` by id): the same checks, no query per source.
    pub async fn routes_with_donkies(
        &self,
        sources: &[&FundingSource],
        customers: &BTreeMap<i64, Customer>,
        to_donkies: bool,
    ) -> ServiceResult<Vec<ServiceResult<Route>>> {
        let donkies = self.donkies_funding_source().await?;
        Ok(sources
            .iter()
            .map(|source| {
                if source.is_removed || source.status != FundingSourceStatus::Verified {
                    return Err(ServiceError::invalid("The funding source is not verified."));
                }
                let (party, id, user_id) = source_party(source, customers.get(&source.customer_id))?;
                let (from, to) = if to_donkies {
                    ((party, id), (TransferParty::Account, donkies.clone()))
                } else {
                    ((TransferParty::Account, donkies.clone()), (party, id))
                };
                if let Err(refusal) = check_transfer(&from.0, &to.0) {
                    tracing::warn!(%refusal, "transfer refused before reaching Dwolla");
                    return Err(ServiceError::invalid(format!("Transfer refused: {refusal}")));
                }
                Ok(Route { from: from.1, to: to.1, user_id })
            })
            .collect())
    }

    /// [`PaymentsService::record_transfer`] of many `(reference, transfer)`, in a few
    /// statements; their ids, in order.
    pub async fn record_transfers(
        &self,
        work: &mut Work,
        transfers: &[(String, PreparedTransfer)],
    ) -> ServiceResult<Vec<i64>> {
        let t = now();
        let ids: Vec<(i64, String)> = transfers
            .iter()
            .map(|_| {
                let id = new_id();
                (id, format!("transfer-{id}"))
            })
            .collect();
        let rows: Vec<NewTransfer<'_>> = transfers
            .iter()
            .zip(&ids)
            .map(|((reference, prepared), (id, key))| NewTransfer {
                id: *id,
                user_id: prepared.user_id,
                reference,
                idempotency_key: key,
                source_funding_source: &prepared.from,
                destination: &prepared.to,
                amount: prepared.amount,
                status: TransferStatus::Pending,
                now: t,
            })
            .collect();
        donkies_store::money_batch::insert_transfers(work, &rows).await?;
        let jobs: Vec<SendTransfer> = ids.iter().map(|(id, _)| SendTransfer { transfer_id: *id }).collect();
        work.enqueue_all(&jobs).await?;
        tracing::info!(transfers = ids.len(), "transfers recorded");
        Ok(ids.into_iter().map(|(id, _)| id).collect())
    }

    /// Record a prepared transfer in `work` and queue the job that sends it; its id. A
    /// reference that has a transfer already is a Conflict on `TRANSFERS_REFERENCE`.
    pub async fn record_transfer(
        &self,
        work: &mut Work,
        reference: &str,
        prepared: &PreparedTransfer,
    ) -> ServiceResult<i64> {
        let id = new_id();
        let new = NewTransfer {
            id,
            user_id: prepared.user_id,
            reference,
            idempotency_key: &format!("transfer-{id}"),
            source_funding_source: &prepared.from,
            destination: &prepared.to,
            amount: prepared.amount,
            status: TransferStatus::Pending,
            now: now(),
        };
        payments::insert_transfer(work, &new).await?;
        work.enqueue(&SendTransfer { transfer_id: id }, Duration::ZERO).await?;
        tracing::info!(reference, transfer = id, amount = %prepared.amount, "transfer recorded");
        Ok(id)
    }

    /// The `send_transfer` job.
    pub async fn send_transfer(&self, transfer_id: i64) -> ServiceResult<()> {
        let Some(transfer) = payments::transfer_by_id(&self.store.db, transfer_id).await? else {
            return Ok(());
        };
        if transfer.dwolla_id.is_some() || transfer.status.is_final() {
            return Ok(());
        }
        let request = TransferRequest::between(&transfer.source_funding_source, &transfer.destination, transfer.amount)
            .with_metadata("reference", &transfer.reference);
        let dwolla_id = match self.rail.create_transfer(&request, &transfer.idempotency_key).await {
            Ok(id) => id,
            Err(e) => return self.transfer_not_sent(&transfer, e).await,
        };
        let found = self.rail.transfer(&dwolla_id).await?;
        let status = TransferStatus::parse(&wire_text(&found.status));
        let mut work = self.store.begin().await?;
        payments::set_transfer_dwolla_id(&mut work, transfer_id, &dwolla_id, &TransferStatus::Pending, now()).await?;
        work.commit().await?;
        if status.is_final() {
            self.resolve_transfer(&transfer, &dwolla_id, status).await?;
        }
        Ok(())
    }

    /// Dwolla did not take the transfer: refused for good (e.g. an unverified source, or a
    /// source it does not know), the transfer failed; unavailable for now, it is sent again.
    #[deny(clippy::wildcard_enum_match_arm)]
    async fn transfer_not_sent(&self, transfer: &Transfer, e: DwollaError) -> ServiceResult<()> {
        match e.failure() {
            ProviderFailure::Refused | ProviderFailure::NotFound => {
                let text = e.to_string();
                tracing::error!(transfer = transfer.id, error = %text, "Dwolla refused the transfer");
                self.end_transfer(transfer, TransferStatus::Failed, Some(("refused".to_owned(), text))).await
            }
            ProviderFailure::Transient { .. } | ProviderFailure::RateLimited { .. } | ProviderFailure::Auth => {
                Err(e.into())
            }
        }
    }

    /// Read a transfer from Dwolla and record how it ended.
    pub async fn track_transfer(&self, transfer: &Transfer) -> ServiceResult<()> {
        let Some(dwolla_id) = &transfer.dwolla_id else {
            return Ok(());
        };
        let found = self.rail.transfer(dwolla_id).await?;
        let status = TransferStatus::parse(&wire_text(&found.status));
        if status.is_final() {
            self.resolve_transfer(transfer, dwolla_id, status).await?;
        }
        Ok(())
    }

    async fn resolve_transfer(
        &self,
        transfer: &Transfer,
        dwolla_id: &str,
        status: TransferStatus,
    ) -> ServiceResult<()> {
        let failure = if status == TransferStatus::Failed {
            match self.rail.transfer_failure(dwolla_id).await {
                Ok(f) => Some((f.code, f.description)),
                Err(DwollaError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        self.end_transfer(transfer, status, failure).await
    }

    /// Record how a transfer ended, and what that means for the money it moved, in one
    /// transaction: a transfer resolves once, so a repeated webhook or poll changes nothing.
    async fn end_transfer(
        &self,
        transfer: &Transfer,
        status: TransferStatus,
        failure: Option<(String, String)>,
    ) -> ServiceResult<()> {
        // The status, what an ACH return does to the bank and the customer, what the end means
        // for the money, and the mail that tells the user: one transaction.
        let mut work = self.store.begin().await?;
        let changed = payments::set_transfer_status(
            &mut work,
            transfer.id,
            &status,
            failure.as_ref().map(|(c, d)| (c.as_str(), d.as_str())),
            now(),
        )
        .await?;
        if !changed {
            return Ok(());
        }
        if let Some((code, _)) = &failure {
            self.apply_return(&mut work, &transfer.source_funding_source, code).await?;
        }
        super::money::settle_money(&mut work, transfer, &status, failure.as_ref().map(|(c, _)| c.as_str())).await?;
        if let Some(user_id) = transfer.user_id {
            let (subject, line) = match (&status, &failure) {
                (TransferStatus::Processed, _) => {
                    ("Your transfer is complete", format!("The transfer of ${} is complete.", transfer.amount))
                }
                (TransferStatus::Failed, Some((code, description))) => (
                    "Your transfer failed",
                    format!("The transfer of ${} failed: {description} ({code}).", transfer.amount),
                ),
                (TransferStatus::Cancelled, _) => {
                    ("Your transfer was cancelled", format!("The transfer of ${} was cancelled.", transfer.amount))
                }
                _ => ("Your transfer failed", format!("The transfer of ${} failed.", transfer.amount)),
            };
            self.notify_user(&mut work, user_id, "transfer", subject, &line).await?;
        }
        work.commit().await?;
        tracing::info!(transfer = transfer.id, status = status.as_str(), "transfer resolved");
        Ok(())
    }

    /// What an ACH return does to the bank and the customer (PROVIDERS.md B4.4).
    /// In the transaction that records the failed transfer.
    async fn apply_return(&self, work: &mut Work, dwolla_funding_source: &str, code: &str) -> ServiceResult<()> {
        let consequences = return_consequences(code);
        let Some(source) = payments::funding_source_by_dwolla_id(&mut **work, dwolla_funding_source).await? else {
            return Ok(());
        };
        if consequences.unverify_funding_source {
            payments::set_funding_source_status(work, source.id, FundingSourceStatus::Unverified, now()).await?;
        }
        if consequences.remove_funding_source {
            payments::mark_funding_source_removed(work, source.id, now()).await?;
        }
        if let Some(status) = consequences.customer {
            payments::set_customer_status(work, source.customer_id, &status, now()).await?;
        }
        Ok(())
    }

    /// Mail the user about something that happened to their money, as part of `work`.
    async fn notify_user(
        &self,
        work: &mut Work,
        user_id: i64,
        template: &'static str,
        subject: &str,
        line: &str,
    ) -> ServiceResult<()> {
        let Some(user) = users::find_by_id(&mut **work, user_id).await? else {
            return Ok(());
        };
        let link = self.settings.frontend.link("accounts", &[]);
        let message = mail::payment_notice(template, subject, &user.first_name, line, link.trim_end_matches('?'));
        queue_mail(work, &self.sealer, Some(user.id), &user.email, message).await?;
        Ok(())
    }

    /// A webhook from Dwolla, its signature already checked: recorded once (a replay is a
    /// no-op) and applied by a job.
    pub async fn receive_dwolla_event(&self, event: &wire::Event) -> ServiceResult<bool> {
        let mut work = self.store.begin().await?;
        if !payments::record_event(&mut work, &event.id, &event.topic, &event.resource_id, now()).await? {
            return Ok(false);
        }
        let task = ApplyDwollaEvent {
            event_id: event.id.clone(),
            topic: event.topic.clone(),
            resource_id: event.resource_id.clone(),
        };
        work.enqueue(&task, Duration::ZERO).await?;
        work.commit().await?;
        Ok(true)
    }

    /// The `apply_dwolla_event` job: read the resource the event is about and update ours.
    #[deny(clippy::wildcard_enum_match_arm)]
    pub async fn apply_dwolla_event(&self, topic: &Topic, resource_id: &str) -> ServiceResult<()> {
        match topic {
            Topic::Transfer(_) => {
                if let Some(transfer) = payments::transfer_by_dwolla_id(&self.store.db, resource_id).await? {
                    self.track_transfer(&transfer).await?;
                }
                Ok(())
            }
            Topic::FundingSourceAdded
            | Topic::FundingSourceRemoved
            | Topic::FundingSourceVerified
            | Topic::FundingSourceUnverified
            | Topic::FundingSourceUpdated
            | Topic::FundingSourceNegative
            | Topic::MicroDepositsAdded
            | Topic::MicroDepositsCompleted
            | Topic::MicroDepositsFailed
            | Topic::MicroDepositsMaxAttempts => self.refresh_funding_source(resource_id, topic).await,
            Topic::Customer(_) => self.refresh_customer(resource_id).await,
            Topic::Unknown(name) => {
                tracing::debug!(topic = %name, "Dwolla event of no interest");
                Ok(())
            }
        }
    }

    async fn refresh_customer(&self, dwolla_id: &str) -> ServiceResult<()> {
        let Some(customer) = payments::customer_by_dwolla_id(&self.store.db, dwolla_id).await? else {
            return Ok(());
        };
        let found = self.rail.customer(dwolla_id).await?;
        let status = CustomerStatus::parse(&wire_text(&found.status));
        let mut work = self.store.begin().await?;
        if payments::set_customer_status(&mut work, customer.id, &status, now()).await? {
            let line = match status {
                CustomerStatus::Verified => {
                    Some(("Your Donkies payments are verified", "Your identity is verified: you can now add a bank."))
                }
                CustomerStatus::Suspended => Some((
                    "Your Donkies payments are suspended",
                    "Transfers are suspended for your account. Please contact us.",
                )),
                CustomerStatus::Document => {
                    Some(("Donkies needs a document", "To verify your identity we need a photo of an ID document."))
                }
                _ => None,
            };
            if let Some((subject, line)) = line {
                self.notify_user(&mut work, customer.user_id, "customer", subject, line).await?;
            }
        }
        work.commit().await?;
        Ok(())
    }

    async fn refresh_funding_source(&self, dwolla_id: &str, topic: &Topic) -> ServiceResult<()> {
        let Some(source) = payments::funding_source_by_dwolla_id(&self.store.db, dwolla_id).await? else {
            return Ok(());
        };
        let found = self.rail.funding_source(dwolla_id).await?;
        let status = FundingSourceStatus::parse(&wire_text(&found.status)).unwrap_or(FundingSourceStatus::Unverified);
        // The read may be older than a verification that just happened here.
        let mut work = self.store.begin().await?;
        payments::refresh_funding_source_status(&mut work, source.id, status, now()).await?;
        if found.removed && !source.is_removed {
            payments::mark_funding_source_removed(&mut work, source.id, now()).await?;
        }
        let line = match topic {
            Topic::FundingSourceAdded => {
                Some(("A bank was added", "A bank account was added to your Donkies payments."))
            }
            Topic::FundingSourceRemoved => {
                Some(("A bank was removed", "A bank account was removed from your Donkies payments."))
            }
            Topic::FundingSourceVerified => Some(("Your bank is verified", "Your bank account is verified.")),
            Topic::MicroDepositsAdded => Some((
                "Micro-deposits are on their way",
                "Two small deposits are on their way to your bank: enter their amounts to verify it.",
            )),
            Topic::MicroDepositsCompleted => Some((
                "Micro-deposits arrived",
                "The two small deposits have reached your bank: enter their amounts to verify it.",
            )),
            Topic::MicroDepositsFailed => Some((
                "Micro-deposits failed",
                "The small deposits to your bank failed: please check the account and routing numbers.",
            )),
            Topic::FundingSourceUnverified
            | Topic::FundingSourceUpdated
            | Topic::FundingSourceNegative
            | Topic::MicroDepositsMaxAttempts
            | Topic::Customer(_)
            | Topic::Transfer(_)
            | Topic::Unknown(_) => None,
        };
        if let Some((subject, line)) = line {
            self.notify_user(&mut work, source.user_id, "funding_source", subject, line).await?;
        }
        work.commit().await?;
        Ok(())
    }

    /// The `poll_payments` job: the backup for webhooks.
    pub async fn poll_payments(&self) -> ServiceResult<()> {
        for customer in payments::customers_with_dwolla_id(&self.store.db).await? {
            let settled = matches!(customer.status, Some(CustomerStatus::Verified | CustomerStatus::Deactivated));
            if let (false, Some(dwolla_id)) = (settled, &customer.dwolla_id) {
                self.refresh_customer(dwolla_id).await?;
            }
        }
        for transfer in payments::transfers_in_flight(&self.store.db).await? {
            self.track_transfer(&transfer).await?;
        }
        Ok(())
    }

    /// The `ensure_dwolla_webhook` job.
    pub async fn ensure_webhook_subscription(&self, url: &str) -> ServiceResult<()> {
        let existing = self.rail.webhook_subscriptions().await?;
        if existing.iter().any(|s| s.url == url) {
            return Ok(());
        }
        let key = format!("webhook-{}", crate::crypto::token_hash(url));
        self.rail.create_webhook_subscription(url, &self.settings.webhook_secret, &key).await?;
        tracing::info!(url, "Dwolla webhooks subscribed");
        Ok(())
    }

    /// Transfers for the operator, optionally of one status.
    pub async fn list_transfers(&self, status: Option<&TransferStatus>) -> ServiceResult<Vec<Transfer>> {
        Ok(payments::list_transfers(&self.store.db, status).await?)
    }

    pub async fn list_customers(&self) -> ServiceResult<Vec<Customer>> {
        Ok(payments::list_customers(&self.store.db).await?)
    }

    /// Sandbox only: process pending transfers and micro-deposits now.
    pub async fn simulate_processing(&self) -> ServiceResult<u64> {
        Ok(self.rail.simulate_processing().await?)
    }

    /// Operator: move `amount` from the user's round-up source to Donkies.
    pub async fn collect_by_hand(&self, email: &str, amount: Cents) -> ServiceResult<Transfer> {
        let user = users::find_by_email(&self.store.db, email).await?.ok_or(ServiceError::NotFound)?;
        let source = self
            .round_up_source(user.id)
            .await?
            .ok_or_else(|| ServiceError::invalid("The user has no round-up source."))?;
        let reference = format!("manual:{}", crate::crypto::new_token());
        self.transfer(&reference, Endpoint::FundingSource(source.id), Endpoint::Donkies, amount).await
    }
}

/// The text of one of the client's lenient wire enums, as Dwolla writes it.
fn wire_text<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn wire_bank_type(kind: BankAccountType) -> wire::BankAccountType {
    match kind {
        BankAccountType::Checking => wire::BankAccountType::Checking,
        BankAccountType::Savings => wire::BankAccountType::Savings,
    }
}

fn domain_bank_type(kind: wire::BankAccountType) -> BankAccountType {
    match kind {
        wire::BankAccountType::Savings => BankAccountType::Savings,
        _ => BankAccountType::Checking,
    }
}

/// A verified funding source as a party to a transfer: its customer's standing, its Dwolla id
/// and its user.
fn source_party(
    source: &FundingSource,
    customer: Option<&Customer>,
) -> ServiceResult<(TransferParty, String, Option<i64>)> {
    let customer = customer.ok_or(ServiceError::NotFound)?;
    let dwolla_id =
        source.dwolla_id.clone().ok_or_else(|| ServiceError::invalid("The funding source is not at Dwolla yet."))?;
    let status = customer.status.clone().unwrap_or(CustomerStatus::Unverified);
    Ok((TransferParty::Customer { kind: customer.kind, status }, dwolla_id, Some(source.user_id)))
}
