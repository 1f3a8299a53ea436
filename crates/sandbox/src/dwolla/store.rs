//! The simulator's in-memory Dwolla: the Account, customers, funding
//! sources, micro-deposits, transfers, webhook subscriptions and events, with
//! the sandbox rules of PROVIDERS.md Part B. Every method answers the wire
//! type or the [`ApiError`] Dwolla would answer.
//!
//! Every record a method changes is marked dirty; [`Db::take_rows`] turns
//! the marks into the rows the journal writes, and [`Db::load`] builds the
//! state back from them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, SubsecRound, Utc};
use donkies_dwolla::Cents;
use donkies_dwolla::wire::*;
use donkies_dwolla::{ExposeSecret, SecretString, wire};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::bank::{self, ReturnCodeRule};
use super::error::{ApiError, field_error};
use crate::journal::{Dirty, Row, Stored};

/// Timestamps as Dwolla writes them: UTC with milliseconds.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn new_id() -> String {
    Uuid::new_v4().to_string()
}

/// Who owns a funding source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Owner {
    Account,
    Customer(String),
}

/// A transfer party as the permission matrix (B5) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    Account,
    Verified,
    Unverified,
    ReceiveOnly,
    Restricted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CustomerRec {
    id: String,
    first_name: String,
    last_name: String,
    email: String,
    customer_type: CustomerType,
    status: CustomerStatus,
    created: DateTime<Utc>,
    business_name: Option<String>,
    address: Address,
    correlation_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MicroDepositRec {
    created: DateTime<Utc>,
    status: MicroDepositStatus,
    failed_attempts: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SourceRec {
    id: String,
    owner: Owner,
    source_type: FundingSourceType,
    status: FundingSourceStatus,
    bank_account_type: Option<BankAccountType>,
    name: String,
    created: DateTime<Utc>,
    removed: bool,
    routing_number: String,
    account_number: String,
    balance: Cents,
    micro_deposits: Option<MicroDepositRec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TransferRec {
    id: String,
    source: String,
    destination: String,
    amount: Cents,
    status: TransferStatus,
    created: DateTime<Utc>,
    metadata: Option<BTreeMap<String, String>>,
    correlation_id: Option<String>,
    /// Whether the source balance was debited at creation.
    debited: bool,
    failure: Option<&'static ReturnCodeRule>,
    /// The funding source whose return failed the transfer.
    failed_source: Option<String>,
    /// A `-late` return still to come at the next simulation.
    late_return: Option<(&'static ReturnCodeRule, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SubscriptionRec {
    pub id: String,
    pub url: String,
    #[serde(serialize_with = "expose")]
    pub secret: SecretString,
    pub paused: bool,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventRec {
    id: String,
    topic: String,
    resource_id: String,
    resource_href: String,
    customer_href: Option<String>,
    created: DateTime<Utc>,
}

/// An event to deliver to a subscription.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub subscription: SubscriptionRec,
    pub topic: String,
    pub body: Vec<u8>,
}

/// The most transfers a simulation processes (B6.1).
const SIMULATION_BATCH: usize = 500;

#[derive(Debug)]
pub(crate) struct Db {
    /// `http://host:port` without a trailing slash.
    base: String,
    account_id: String,
    account_name: String,
    customers: HashMap<String, CustomerRec>,
    customer_order: Vec<String>,
    sources: HashMap<String, SourceRec>,
    source_order: Vec<String>,
    transfers: HashMap<String, TransferRec>,
    transfer_order: Vec<String>,
    iav_tokens: HashMap<String, (String, bool)>,
    subscriptions: Vec<SubscriptionRec>,
    events: Vec<EventRec>,
    /// Deliveries waiting to be sent once the lock is released.
    outbox: Vec<Delivery>,
    /// Records changed since the journal last wrote.
    dirty: Dirty,
}

/// The webhook secret as stored (the state file holds it as Dwolla does).
fn expose<S: serde::Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

/// The master Account as stored.
#[derive(Debug, Serialize, Deserialize)]
struct AccountRec {
    id: String,
    name: String,
}

const ACCOUNT: &str = "account";
const CUSTOMER: &str = "customer";
const SOURCE: &str = "source";
const TRANSFER: &str = "transfer";
const IAV: &str = "iav";
const SUBSCRIPTION: &str = "subscription";
const EVENT: &str = "event";

impl Db {
    pub fn new(base: &str, account_name: &str, account_balance: Cents) -> Self {
        let mut db = Self {
            base: base.trim_end_matches('/').to_owned(),
            account_id: new_id(),
            account_name: account_name.to_owned(),
            customers: HashMap::new(),
            customer_order: Vec::new(),
            sources: HashMap::new(),
            source_order: Vec::new(),
            transfers: HashMap::new(),
            transfer_order: Vec::new(),
            iav_tokens: HashMap::new(),
            subscriptions: Vec::new(),
            events: Vec::new(),
            outbox: Vec::new(),
            dirty: Dirty::new(true),
        };
        db.dirty.mark(ACCOUNT, "");
        let balance = db.add_balance(Owner::Account);
        db.source_mut(&balance).balance = account_balance;
        let bank = SourceRec {
            id: new_id(),
            owner: Owner::Account,
            source_type: FundingSourceType::Bank,
            status: FundingSourceStatus::Verified,
            bank_account_type: Some(BankAccountType::Checking),
            name: "Superhero Savings Bank".into(),
            created: now(),
            removed: false,
            routing_number: "222222226".into(),
            account_number: "123456789".into(),
            balance: Cents::ZERO,
            micro_deposits: None,
        };
        db.insert_source(bank);
        db
    }

    /// The state the journal kept, or a new Account when it kept none;
    /// changes are marked for the journal when it `keeps` them.
    pub fn load(
        base: &str,
        account_name: &str,
        account_balance: Cents,
        stored: Vec<Stored>,
        keeps: bool,
    ) -> std::io::Result<Self> {
        let mut db = Self::new(base, account_name, account_balance);
        if stored.is_empty() {
            if !keeps {
                db.dirty = Dirty::new(false);
            }
            return Ok(db);
        }
        db.dirty = Dirty::new(keeps);
        db.sources.clear();
        db.source_order.clear();
        for record in &stored {
            match record.kind.as_str() {
                ACCOUNT => {
                    let account: AccountRec = record.parse()?;
                    (db.account_id, db.account_name) = (account.id, account.name);
                }
                CUSTOMER => {
                    db.customers.insert(record.id.clone(), record.parse()?);
                    db.customer_order.push(record.id.clone());
                }
                SOURCE => {
                    db.sources.insert(record.id.clone(), record.parse()?);
                    db.source_order.push(record.id.clone());
                }
                TRANSFER => {
                    db.transfers.insert(record.id.clone(), record.parse()?);
                    db.transfer_order.push(record.id.clone());
                }
                IAV => {
                    db.iav_tokens.insert(record.id.clone(), record.parse()?);
                }
                SUBSCRIPTION => db.subscriptions.push(record.parse()?),
                EVENT => db.events.push(record.parse()?),
                _ => {}
            }
        }
        Ok(db)
    }

    /// The rows of the records changed since the last call.
    pub fn take_rows(&mut self) -> Vec<Row> {
        let dirty = self.dirty.take();
        dirty
            .into_iter()
            .map(|(kind, id)| match kind {
                ACCOUNT => {
                    let account = AccountRec { id: self.account_id.clone(), name: self.account_name.clone() };
                    Row::put(ACCOUNT, id, &account)
                }
                CUSTOMER => Row::of(kind, id.clone(), self.customers.get(&id)),
                SOURCE => Row::of(kind, id.clone(), self.sources.get(&id)),
                TRANSFER => Row::of(kind, id.clone(), self.transfers.get(&id)),
                IAV => Row::of(kind, id.clone(), self.iav_tokens.get(&id)),
                SUBSCRIPTION => Row::of(kind, id.clone(), self.subscriptions.iter().find(|s| s.id == id)),
                _ => Row::of(kind, id.clone(), self.events.iter().rev().find(|e| e.id == id)),
            })
            .collect()
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    pub fn is_subscription_active(&self, id: &str) -> bool {
        self.subscriptions.iter().any(|subscription| subscription.id == id && !subscription.paused)
    }

    pub fn href(&self, segments: &[&str]) -> String {
        let mut href = self.base.clone();
        for segment in segments {
            href.push('/');
            href.push_str(segment);
        }
        href
    }

    fn link(&self, segments: &[&str], resource_type: &str) -> Link {
        Link::typed(self.href(segments), resource_type)
    }

    /// The id of `href` when it names a resource of `collection` here.
    fn id_in(&self, href: &str, collection: &str) -> Option<String> {
        let rest = href.strip_prefix(&self.base)?.strip_prefix('/')?;
        let (kind, id) = rest.trim_end_matches('/').split_once('/')?;
        (kind == collection && !id.contains('/')).then(|| id.to_ascii_lowercase())
    }

    pub fn take_outbox(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.outbox)
    }

    // -----------------------------------------------------------------------
    // Events

    fn emit(&mut self, topic: &str, resource_href: String, customer: Option<&str>) {
        let event = EventRec {
            id: new_id(),
            topic: topic.to_owned(),
            resource_id: wire::id_from_href(&resource_href).unwrap_or_default().to_owned(),
            resource_href,
            customer_href: customer.map(|id| self.href(&["customers", id])),
            created: now(),
        };
        let mut body = self.event(&event);
        body.created = None;
        body.timestamp = Some(event.created);
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        for subscription in self.subscriptions.iter().filter(|s| !s.paused) {
            self.outbox.push(Delivery {
                subscription: subscription.clone(),
                topic: event.topic.clone(),
                body: bytes.clone(),
            });
        }
        self.dirty.mark(EVENT, &event.id);
        self.events.push(event);
    }

    fn event(&self, event: &EventRec) -> Event {
        let mut links = Links::from([
            ("self".to_owned(), self.link(&["events", &event.id], "event")),
            ("account".to_owned(), self.link(&["accounts", &self.account_id], "account")),
            ("resource".to_owned(), Link::new(event.resource_href.clone())),
        ]);
        if let Some(customer) = &event.customer_href {
            links.insert("customer".into(), Link::typed(customer.clone(), "customer"));
        }
        Event {
            links,
            id: event.id.clone(),
            topic: event.topic.clone(),
            resource_id: event.resource_id.clone(),
            created: Some(event.created),
            timestamp: None,
        }
    }

    pub fn read_event(&self, id: &str) -> Result<Event, ApiError> {
        let event = self.events.iter().find(|event| event.id.eq_ignore_ascii_case(id));
        event.map(|event| self.event(event)).ok_or_else(|| ApiError::not_found("Event not found."))
    }

    /// Events, newest first.
    pub fn list_events(&self) -> Vec<Event> {
        self.events.iter().rev().map(|event| self.event(event)).collect()
    }

    // -----------------------------------------------------------------------
    // Root and Account

    pub fn root(&self) -> Root {
        Root {
            links: Links::from([
                ("account".to_owned(), self.link(&["accounts", &self.account_id], "account")),
                ("customers".to_owned(), self.link(&["customers"], "customer")),
                ("events".to_owned(), self.link(&["events"], "event")),
                ("webhook-subscriptions".to_owned(), self.link(&["webhook-subscriptions"], "webhook-subscription")),
            ]),
        }
    }

    pub fn account(&self, id: &str) -> Result<Account, ApiError> {
        if !id.eq_ignore_ascii_case(&self.account_id) {
            return Err(ApiError::not_found("Account not found."));
        }
        Ok(Account {
            links: Links::from([
                ("self".to_owned(), self.link(&["accounts", id], "account")),
                ("funding-sources".to_owned(), self.link(&["accounts", id, "funding-sources"], "funding-source")),
                ("customers".to_owned(), self.link(&["customers"], "customer")),
            ]),
            id: self.account_id.clone(),
            name: self.account_name.clone(),
        })
    }

    pub fn account_sources(&self, id: &str) -> Result<Vec<FundingSource>, ApiError> {
        self.account(id)?;
        Ok(self.sources_of(&Owner::Account, true))
    }

    // -----------------------------------------------------------------------
    // Customers

    fn customer_rec(&self, id: &str) -> Result<&CustomerRec, ApiError> {
        self.customers.get(&id.to_ascii_lowercase()).ok_or_else(|| ApiError::not_found("Customer not found."))
    }

    fn customer_mut(&mut self, id: &str) -> &mut CustomerRec {
        self.dirty.mark(CUSTOMER, id);
        self.customers.get_mut(id).expect("the customer was looked up first")
    }

    fn customer(&self, rec: &CustomerRec) -> Customer {
        let id = rec.id.as_str();
        let mut links = Links::from([
            ("self".to_owned(), self.link(&["customers", id], "customer")),
            ("funding-sources".to_owned(), self.link(&["customers", id, "funding-sources"], "funding-source")),
            ("transfers".to_owned(), self.link(&["customers", id, "transfers"], "transfer")),
            ("edit".to_owned(), self.link(&["customers", id], "customer")),
        ]);
        let party = party_of(rec);
        if party != Party::Restricted {
            links.insert("receive".into(), self.link(&["transfers"], "transfer"));
        }
        if matches!(party, Party::Verified | Party::Unverified) && rec.status != CustomerStatus::Retry {
            links.insert("send".into(), self.link(&["transfers"], "transfer"));
        }
        match rec.status {
            CustomerStatus::Retry => {
                links.insert("retry-verification".into(), self.link(&["customers", id], "customer"));
            }
            CustomerStatus::Document => {
                links.insert("verify-with-document".into(), self.link(&["customers", id, "documents"], "document"));
            }
            _ => {}
        }
        Customer {
            links,
            id: rec.id.clone(),
            first_name: rec.first_name.clone(),
            last_name: rec.last_name.clone(),
            email: rec.email.clone(),
            customer_type: rec.customer_type,
            status: rec.status,
            created: rec.created,
            business_name: rec.business_name.clone(),
            address: rec.address.clone(),
            correlation_id: rec.correlation_id.clone(),
        }
    }

    pub fn read_customer(&self, id: &str) -> Result<Customer, ApiError> {
        Ok(self.customer(self.customer_rec(id)?))
    }

    fn customer_with_email(&self, email: &str) -> Option<&CustomerRec> {
        self.customers.values().find(|customer| customer.email.eq_ignore_ascii_case(email))
    }

    pub fn create_customer(&mut self, body: NewCustomer) -> Result<String, ApiError> {
        let customer_type = body.customer_type.unwrap_or(CustomerType::Unverified);
        let mut errors = check_names(&body.first_name, &body.last_name, &body.email);
        errors.extend(check_type_fields(customer_type, &body.details, false));
        if errors.is_empty()
            && let Some(existing) = self.customer_with_email(&body.email)
        {
            let mut duplicate =
                field_error("Duplicate", "A customer with the specified email already exists.", "/email");
            duplicate.links.insert("about".into(), self.link(&["customers", &existing.id], "customer"));
            errors.push(duplicate);
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let id = new_id();
        let rec = CustomerRec {
            id: id.clone(),
            status: initial_status(customer_type, &body.first_name, body.details.business_name.as_deref()),
            first_name: body.first_name,
            last_name: body.last_name,
            email: body.email,
            customer_type,
            created: now(),
            business_name: body.details.business_name,
            address: if is_verified_type(customer_type) { body.details.address } else { Address::default() },
            correlation_id: body.correlation_id,
        };
        self.dirty.mark(CUSTOMER, &id);
        self.customers.insert(id.clone(), rec);
        self.customer_order.push(id.clone());
        let href = self.href(&["customers", &id]);
        self.emit("customer_created", href, Some(&id));
        self.after_verification(&id);
        Ok(id)
    }

    /// What a new verification status brings: the balance of a verified
    /// customer, and the event of the status.
    fn after_verification(&mut self, id: &str) {
        let rec = &self.customers[id];
        if !is_verified_type(rec.customer_type) {
            return;
        }
        let topic = match rec.status {
            CustomerStatus::Verified => "customer_verified",
            CustomerStatus::Retry => "customer_reverification_needed",
            CustomerStatus::Document => "customer_verification_document_needed",
            CustomerStatus::Kba => "customer_kba_verification_needed",
            CustomerStatus::Suspended => "customer_suspended",
            _ => return,
        };
        if rec.status == CustomerStatus::Verified && self.balance_of(id).is_none() {
            self.add_balance(Owner::Customer(id.to_owned()));
        }
        let href = self.href(&["customers", id]);
        self.emit(topic, href, Some(id));
    }

    pub fn update_customer(&mut self, id: &str, update: CustomerUpdate) -> Result<Customer, ApiError> {
        let rec = self.customer_rec(id)?.clone();
        let id = rec.id.as_str();
        if matches!(rec.status, CustomerStatus::Suspended | CustomerStatus::Deactivated | CustomerStatus::Document) {
            return Err(ApiError::invalid_state("Resource cannot be modified."));
        }
        if let Some(status) = update.status.as_deref() {
            if status != "suspended" {
                return Err(ApiError::field("Invalid", "Status invalid.", "/status"));
            }
            self.customer_mut(id).status = CustomerStatus::Suspended;
            let href = self.href(&["customers", id]);
            self.emit("customer_suspended", href, Some(id));
            return self.read_customer(id);
        }
        let verifying = update.details.ssn.is_some() || update.details.date_of_birth.is_some();
        let upgrade_to = update.customer_type.filter(|t| is_verified_type(*t) && !is_verified_type(rec.customer_type));
        if let Some(customer_type) = upgrade_to.or((rec.status == CustomerStatus::Retry).then_some(rec.customer_type))
            && (upgrade_to.is_some() || verifying)
        {
            return self.verify_customer(rec, customer_type, update);
        }
        if verifying && is_verified_type(rec.customer_type) {
            return Err(ApiError::invalid_state("Resource cannot be modified."));
        }
        let email = update.email.clone().unwrap_or_else(|| rec.email.clone());
        let (first, last) = if is_verified_type(rec.customer_type) {
            (rec.first_name.clone(), rec.last_name.clone())
        } else {
            (update.first_name.unwrap_or(rec.first_name.clone()), update.last_name.unwrap_or(rec.last_name.clone()))
        };
        self.check_new_email(id, &first, &last, &email)?;
        let merged = merge_address(&rec.address, update.details.address);
        let customer = self.customer_mut(id);
        (customer.first_name, customer.last_name, customer.email) = (first, last, email);
        if is_verified_type(customer.customer_type) {
            customer.address = merged;
        } else if update.details.business_name.is_some() {
            customer.business_name = update.details.business_name;
        }
        self.read_customer(id)
    }

    fn check_new_email(&self, id: &str, first: &str, last: &str, email: &str) -> Result<(), ApiError> {
        let mut errors = check_names(first, last, email);
        if errors.is_empty()
            && let Some(other) = self.customer_with_email(email).filter(|other| other.id != id)
        {
            let mut duplicate =
                field_error("Duplicate", "A customer with the specified email already exists.", "/email");
            duplicate.links.insert("about".into(), self.link(&["customers", &other.id], "customer"));
            errors.push(duplicate);
        }
        if errors.is_empty() { Ok(()) } else { Err(ApiError::validation(errors)) }
    }

    /// An upgrade of an unverified customer, or a retry with the full SSN.
    fn verify_customer(
        &mut self,
        rec: CustomerRec,
        customer_type: CustomerType,
        update: CustomerUpdate,
    ) -> Result<Customer, ApiError> {
        let retry = rec.status == CustomerStatus::Retry;
        let first = update.first_name.unwrap_or(rec.first_name.clone());
        let last = update.last_name.unwrap_or(rec.last_name.clone());
        let email = update.email.unwrap_or(rec.email.clone());
        self.check_new_email(&rec.id, &first, &last, &email)?;
        let errors = check_type_fields(customer_type, &update.details, retry);
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let status = match initial_status(customer_type, &first, update.details.business_name.as_deref()) {
            // A retry with the full SSN clears the `retry` sentinel.
            CustomerStatus::Retry if retry => CustomerStatus::Verified,
            status => status,
        };
        let customer = self.customer_mut(&rec.id);
        (customer.first_name, customer.last_name, customer.email) = (first, last, email);
        customer.customer_type = customer_type;
        customer.status = status;
        customer.address = update.details.address;
        customer.business_name = update.details.business_name.or(customer.business_name.take());
        self.after_verification(&rec.id);
        self.read_customer(&rec.id)
    }

    /// Customers matching the query, in creation order.
    pub fn search_customers(&self, query: &CustomerQuery) -> Vec<Customer> {
        let search = query.search.as_deref().map(str::to_lowercase);
        self.customer_order
            .iter()
            .map(|id| &self.customers[id])
            .filter(|rec| query.email.as_deref().is_none_or(|email| rec.email.eq_ignore_ascii_case(email)))
            .filter(|rec| query.status.is_none_or(|status| rec.status == status))
            .filter(|rec| {
                search.as_deref().is_none_or(|needle| {
                    [Some(&rec.first_name), Some(&rec.last_name), Some(&rec.email), rec.business_name.as_ref()]
                        .into_iter()
                        .flatten()
                        .any(|field| field.to_lowercase().contains(needle))
                })
            })
            .map(|rec| self.customer(rec))
            .collect()
    }

    pub fn iav_token(&mut self, customer_id: &str) -> Result<IavToken, ApiError> {
        let id = self.customer_rec(customer_id)?.id.clone();
        let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        self.dirty.mark(IAV, &token);
        self.iav_tokens.insert(token.clone(), (id.clone(), false));
        Ok(IavToken {
            links: Links::from([("self".to_owned(), self.link(&["customers", &id, "iav-token"], "iav-token"))]),
            token: SecretString::from(token),
        })
    }

    /// What a user finishing the hosted IAV does: a verified bank for the
    /// token's customer. A token works once.
    pub fn complete_iav(&mut self, token: &str, login: IavBankLogin) -> Result<IavCompletion, ApiError> {
        let Some((customer, used)) = self.iav_tokens.get(token).cloned() else {
            return Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, "InvalidIavToken", "Invalid IAV token."));
        };
        if used {
            return Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, "InvalidIavToken", "Invalid IAV token."));
        }
        let account_number = login
            .account_number
            .map(|number| number.expose_secret().to_owned())
            .unwrap_or_else(|| (Uuid::new_v4().as_u128() % 10_000_000_000_000).to_string());
        let body = NewFundingSource {
            routing_number: login.routing_number.unwrap_or_else(|| "222222226".into()),
            account_number: SecretString::from(format!("{account_number:0>4}")),
            bank_account_type: Some(login.bank_account_type.unwrap_or(BankAccountType::Checking)),
            name: login.name.unwrap_or_else(|| "Sandbox Checking".into()),
        };
        let id = self.create_source(&customer, body)?;
        self.dirty.mark(IAV, token);
        if let Some(entry) = self.iav_tokens.get_mut(token) {
            entry.1 = true;
        }
        self.source_mut(&id).status = FundingSourceStatus::Verified;
        let href = self.href(&["funding-sources", &id]);
        self.emit("customer_funding_source_verified", href.clone(), Some(&customer));
        Ok(IavCompletion { links: Links::from([("funding-source".to_owned(), Link::typed(href, "funding-source"))]) })
    }

    // -----------------------------------------------------------------------
    // Funding sources

    fn insert_source(&mut self, source: SourceRec) -> String {
        let id = source.id.clone();
        self.dirty.mark(SOURCE, &id);
        self.sources.insert(id.clone(), source);
        self.source_order.push(id.clone());
        id
    }

    fn add_balance(&mut self, owner: Owner) -> String {
        self.insert_source(SourceRec {
            id: new_id(),
            owner,
            source_type: FundingSourceType::Balance,
            status: FundingSourceStatus::Verified,
            bank_account_type: None,
            name: "Balance".into(),
            created: now(),
            removed: false,
            routing_number: String::new(),
            account_number: String::new(),
            balance: Cents::ZERO,
            micro_deposits: None,
        })
    }

    fn balance_of(&self, customer: &str) -> Option<&SourceRec> {
        let owner = Owner::Customer(customer.to_owned());
        self.sources.values().find(|s| s.owner == owner && s.source_type == FundingSourceType::Balance)
    }

    fn source_rec(&self, id: &str) -> Result<&SourceRec, ApiError> {
        self.sources.get(&id.to_ascii_lowercase()).ok_or_else(|| ApiError::not_found("Funding source not found."))
    }

    fn source_mut(&mut self, id: &str) -> &mut SourceRec {
        self.dirty.mark(SOURCE, id);
        self.sources.get_mut(id).expect("the funding source was looked up first")
    }

    fn owner_href(&self, owner: &Owner) -> (String, Link) {
        match owner {
            Owner::Account => ("account".into(), self.link(&["accounts", &self.account_id], "account")),
            Owner::Customer(id) => ("customer".into(), self.link(&["customers", id], "customer")),
        }
    }

    fn source(&self, rec: &SourceRec) -> FundingSource {
        let id = rec.id.as_str();
        let mut links = Links::from([("self".to_owned(), self.link(&["funding-sources", id], "funding-source"))]);
        let (rel, owner) = self.owner_href(&rec.owner);
        links.insert(rel, owner);
        if !rec.removed {
            links.insert("transfer-receive".into(), self.link(&["transfers"], "transfer"));
            if rec.status == FundingSourceStatus::Verified {
                links.insert("transfer-send".into(), self.link(&["transfers"], "transfer"));
            }
        }
        match rec.source_type {
            FundingSourceType::Balance => {
                let balance = self.link(&["funding-sources", id, "balance"], "balance");
                links.insert("balance".into(), balance.clone());
                links.insert("with-available-balance".into(), balance);
            }
            _ if !rec.removed => {
                links.insert("remove".into(), self.link(&["funding-sources", id], "funding-source"));
                let micro = self.link(&["funding-sources", id, "micro-deposits"], "micro-deposits");
                match &rec.micro_deposits {
                    _ if rec.status == FundingSourceStatus::Verified => {}
                    None => {
                        links.insert("initiate-micro-deposits".into(), micro);
                    }
                    Some(deposits) if deposits.failed_attempts >= MAX_MICRO_DEPOSIT_ATTEMPTS => {
                        links.insert("failed-verification-micro-deposits".into(), micro);
                    }
                    Some(_) => {
                        links.insert("verify-micro-deposits".into(), micro);
                    }
                }
            }
            _ => {}
        }
        let bank = rec.source_type == FundingSourceType::Bank;
        FundingSource {
            links,
            id: rec.id.clone(),
            status: rec.status,
            source_type: rec.source_type,
            bank_account_type: rec.bank_account_type,
            name: rec.name.clone(),
            created: rec.created,
            removed: rec.removed,
            channels: if bank { vec!["ach".into()] } else { Vec::new() },
            bank_name: bank.then(|| "SANDBOX TEST BANK".into()),
            fingerprint: bank.then(|| fingerprint(&rec.routing_number, &rec.account_number)),
            balance: None,
        }
    }

    pub fn read_source(&self, id: &str) -> Result<FundingSource, ApiError> {
        Ok(self.source(self.source_rec(id)?))
    }

    fn sources_of(&self, owner: &Owner, include_removed: bool) -> Vec<FundingSource> {
        self.source_order
            .iter()
            .map(|id| &self.sources[id])
            .filter(|source| source.owner == *owner && (include_removed || !source.removed))
            .map(|source| self.source(source))
            .collect()
    }

    pub fn customer_sources(&self, customer_id: &str, removed: Option<bool>) -> Result<Vec<FundingSource>, ApiError> {
        let id = self.customer_rec(customer_id)?.id.clone();
        Ok(self.sources_of(&Owner::Customer(id), removed != Some(false)))
    }

    pub fn create_source(&mut self, customer_id: &str, body: NewFundingSource) -> Result<String, ApiError> {
        let customer = self.customer_rec(customer_id)?.id.clone();
        let account_number = body.account_number.expose_secret().to_owned();
        let mut errors = Vec::new();
        if !bank::is_routing_number(&body.routing_number) {
            errors.push(field_error("Invalid", "Routing number invalid.", "/routingNumber"));
        }
        if !(4..=17).contains(&account_number.len()) || !account_number.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(field_error("Invalid", "Account number invalid.", "/accountNumber"));
        }
        match body.bank_account_type {
            None => errors.push(field_error("Required", "BankAccountType required.", "/bankAccountType")),
            Some(BankAccountType::Other) => {
                errors.push(field_error("Invalid", "BankAccountType invalid.", "/bankAccountType"))
            }
            Some(_) => {}
        }
        errors.extend(check_source_name(&body.name));
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let owner = Owner::Customer(customer.clone());
        let same_bank = self.sources.values().find(|s| {
            s.owner == owner && s.routing_number == body.routing_number && s.account_number == account_number
        });
        match same_bank {
            Some(existing) if !existing.removed => {
                let href = self.href(&["funding-sources", &existing.id]);
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "DuplicateResource",
                    format!("Bank already exists: id={}", existing.id),
                )
                .about(href));
            }
            // Re-adding a removed unverified bank brings the same one back.
            Some(existing) if existing.status == FundingSourceStatus::Unverified => {
                let id = existing.id.clone();
                let source = self.source_mut(&id);
                source.removed = false;
                source.name = body.name;
                let href = self.href(&["funding-sources", &id]);
                self.emit("customer_funding_source_added", href, Some(&customer));
                return Ok(id);
            }
            _ => {}
        }
        let id = self.insert_source(SourceRec {
            id: new_id(),
            owner,
            source_type: FundingSourceType::Bank,
            status: FundingSourceStatus::Unverified,
            bank_account_type: body.bank_account_type,
            name: body.name,
            created: now(),
            removed: false,
            routing_number: body.routing_number,
            account_number,
            balance: Cents::ZERO,
            micro_deposits: None,
        });
        let href = self.href(&["funding-sources", &id]);
        self.emit("customer_funding_source_added", href, Some(&customer));
        Ok(id)
    }

    fn customer_of(&self, source: &SourceRec) -> Option<String> {
        match &source.owner {
            Owner::Customer(id) => Some(id.clone()),
            Owner::Account => None,
        }
    }

    /// The topic for the Account's or a customer's event.
    fn scoped(&self, owner: Option<&str>, topic: &str) -> String {
        if owner.is_some() { format!("customer_{topic}") } else { topic.to_owned() }
    }

    pub fn update_source(&mut self, id: &str, update: FundingSourceUpdate) -> Result<FundingSource, ApiError> {
        let rec = self.source_rec(id)?.clone();
        if update.removed == Some(true) {
            return self.remove_source(&rec.id);
        }
        let Some(name) = update.name else {
            return self.read_source(&rec.id);
        };
        if rec.source_type != FundingSourceType::Bank {
            return Err(ApiError::field("Invalid", "Only funding sources of type=\"bank\" can be updated.", "/name"));
        }
        if rec.removed {
            return Err(ApiError::invalid_state("A removed bank cannot be updated."));
        }
        if let Some(error) = check_source_name(&name) {
            return Err(ApiError::validation(vec![error]));
        }
        self.source_mut(&rec.id).name = name;
        let owner = self.customer_of(&rec);
        let topic = self.scoped(owner.as_deref(), "funding_source_updated");
        let href = self.href(&["funding-sources", &rec.id]);
        self.emit(&topic, href, owner.as_deref());
        self.read_source(&rec.id)
    }

    pub fn remove_source(&mut self, id: &str) -> Result<FundingSource, ApiError> {
        let rec = self.source_rec(id)?.clone();
        if rec.source_type == FundingSourceType::Balance {
            return Err(ApiError::invalid_state("Resource cannot be modified."));
        }
        if !rec.removed {
            self.mark_removed(&rec.id);
        }
        self.read_source(&rec.id)
    }

    fn mark_removed(&mut self, id: &str) {
        self.source_mut(id).removed = true;
        let owner = self.customer_of(&self.sources[id]);
        let topic = self.scoped(owner.as_deref(), "funding_source_removed");
        let href = self.href(&["funding-sources", id]);
        self.emit(&topic, href, owner.as_deref());
    }

    pub fn balance(&self, id: &str) -> Result<Balance, ApiError> {
        let rec = self.source_rec(id)?;
        if rec.source_type != FundingSourceType::Balance {
            return Err(ApiError::not_found("Balance not found."));
        }
        Ok(Balance {
            links: Links::from([
                ("self".to_owned(), self.link(&["funding-sources", &rec.id, "balance"], "balance")),
                ("funding-source".to_owned(), self.link(&["funding-sources", &rec.id], "funding-source")),
            ]),
            balance: Amount::usd(rec.balance),
            total: Some(Amount::usd(rec.balance)),
            last_updated: Some(now()),
        })
    }

    // -----------------------------------------------------------------------
    // Micro-deposits (B3.3)

    pub fn initiate_micro_deposits(&mut self, id: &str) -> Result<String, ApiError> {
        let rec = self.source_rec(id)?.clone();
        if rec.source_type != FundingSourceType::Bank || rec.removed {
            return Err(ApiError::invalid_state("Resource cannot be modified."));
        }
        if rec.status == FundingSourceStatus::Verified {
            return Err(ApiError::invalid_state("Bank already verified."));
        }
        if rec.micro_deposits.is_some() {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "MaxNumberOfResources",
                "Micro-deposits already initiated for this funding source.",
            ));
        }
        self.source_mut(&rec.id).micro_deposits =
            Some(MicroDepositRec { created: now(), status: MicroDepositStatus::Pending, failed_attempts: 0 });
        let owner = self.customer_of(&rec);
        let topic = self.scoped(owner.as_deref(), "microdeposits_added");
        let href = self.href(&["funding-sources", &rec.id]);
        self.emit(&topic, href, owner.as_deref());
        Ok(self.href(&["funding-sources", &rec.id, "micro-deposits"]))
    }

    pub fn micro_deposits(&self, id: &str) -> Result<MicroDeposits, ApiError> {
        let rec = self.source_rec(id)?;
        let deposits =
            rec.micro_deposits.as_ref().ok_or_else(|| ApiError::not_found("Micro-deposits not initiated."))?;
        let mut links = Links::from([(
            "self".to_owned(),
            self.link(&["funding-sources", &rec.id, "micro-deposits"], "micro-deposits"),
        )]);
        if rec.status == FundingSourceStatus::Unverified && deposits.failed_attempts < MAX_MICRO_DEPOSIT_ATTEMPTS {
            links.insert("verify-micro-deposits".into(), links["self"].clone());
        }
        Ok(MicroDeposits { links, created: Some(deposits.created), status: deposits.status, failure: None })
    }

    /// Sandbox rule: any two amounts below $0.10 verify, except 0.09 + 0.09,
    /// which is a wrong guess; the third wrong guess ends the attempts.
    pub fn verify_micro_deposits(&mut self, id: &str, body: VerifyMicroDeposits) -> Result<(), ApiError> {
        let rec = self.source_rec(id)?.clone();
        let Some(deposits) = rec.micro_deposits.clone() else {
            return Err(ApiError::not_found("Micro-deposits not initiated."));
        };
        if rec.status == FundingSourceStatus::Verified {
            return Err(ApiError::invalid_state("Bank already verified."));
        }
        if deposits.failed_attempts >= MAX_MICRO_DEPOSIT_ATTEMPTS {
            return Err(ApiError::invalid_state("Too many attempts."));
        }
        let amounts = [body.amount1.value, body.amount2.value];
        if let Some(index) = amounts.iter().position(|amount| amount.get() <= 0 || amount.get() > 15) {
            return Err(ApiError::field("Invalid", "Invalid amount.", &format!("/amount{}/value", index + 1)));
        }
        let owner = self.customer_of(&rec);
        let href = self.href(&["funding-sources", &rec.id]);
        let right = amounts.iter().all(|amount| amount.get() < 10) && amounts != [Cents::new(9), Cents::new(9)];
        if right {
            let source = self.source_mut(&rec.id);
            source.status = FundingSourceStatus::Verified;
            if let Some(deposits) = source.micro_deposits.as_mut() {
                deposits.status = MicroDepositStatus::Processed;
            }
            let topic = self.scoped(owner.as_deref(), "funding_source_verified");
            self.emit(&topic, href, owner.as_deref());
            return Ok(());
        }
        let attempts = deposits.failed_attempts + 1;
        if let Some(deposits) = self.source_mut(&rec.id).micro_deposits.as_mut() {
            deposits.failed_attempts = attempts;
            if attempts >= MAX_MICRO_DEPOSIT_ATTEMPTS {
                deposits.status = MicroDepositStatus::Failed;
            }
        }
        let outcome =
            if attempts >= MAX_MICRO_DEPOSIT_ATTEMPTS { "microdeposits_maxattempts" } else { "microdeposits_failed" };
        let topic = self.scoped(owner.as_deref(), outcome);
        self.emit(&topic, href, owner.as_deref());
        Err(ApiError::field("Invalid", "Wrong amount(s).", "/amount1/value"))
    }

    // -----------------------------------------------------------------------
    // Transfers (B4, B5)

    fn party(&self, owner: &Owner) -> Party {
        match owner {
            Owner::Account => Party::Account,
            Owner::Customer(id) => party_of(&self.customers[id]),
        }
    }

    /// The funding source a destination link names: a funding source, a
    /// customer (its balance) or the Account (its balance).
    fn destination_source(&self, href: &str) -> Option<String> {
        if let Some(id) = self.id_in(href, "funding-sources") {
            return self.sources.contains_key(&id).then_some(id);
        }
        if let Some(id) = self.id_in(href, "customers") {
            return self.balance_of(&id).map(|source| source.id.clone());
        }
        self.id_in(href, "accounts").filter(|id| id.eq_ignore_ascii_case(&self.account_id))?;
        self.sources
            .values()
            .find(|s| s.owner == Owner::Account && s.source_type == FundingSourceType::Balance)
            .map(|s| s.id.clone())
    }

    pub fn create_transfer(&mut self, body: NewTransfer) -> Result<String, ApiError> {
        const SOURCE: &str = "/_links/source/href";
        const DESTINATION: &str = "/_links/destination/href";
        if body.amount.value.get() <= 0 {
            return Err(ApiError::field("Invalid", "Invalid amount.", "/amount/value"));
        }
        if let Some(metadata) = &body.metadata
            && (metadata.len() > 10 || metadata.iter().any(|(key, value)| key.len() >= 255 || value.len() >= 255))
        {
            return Err(ApiError::field("Invalid", "Metadata invalid.", "/metadata"));
        }
        let Some(source_href) = body.links.get("source").map(|link| link.href.as_str()) else {
            return Err(ApiError::field("Required", "Source required.", SOURCE));
        };
        let Some(destination_href) = body.links.get("destination").map(|link| link.href.as_str()) else {
            return Err(ApiError::field("Required", "Destination required.", DESTINATION));
        };
        let source = self
            .id_in(source_href, "funding-sources")
            .and_then(|id| self.sources.get(&id))
            .ok_or_else(|| ApiError::field("NotFound", "Funding source not found.", SOURCE))?
            .clone();
        if source.removed || source.status != FundingSourceStatus::Verified {
            return Err(ApiError::field("Invalid", "Invalid funding source.", SOURCE));
        }
        let destination = self
            .destination_source(destination_href)
            .map(|id| self.sources[&id].clone())
            .filter(|destination| !destination.removed)
            .ok_or_else(|| ApiError::field("Invalid", "Invalid destination funding source.", DESTINATION))?;
        let (sender, receiver) = (self.party(&source.owner), self.party(&destination.owner));
        if sender == Party::Restricted {
            return Err(ApiError::field("Restricted", "Sender restricted.", SOURCE));
        }
        if receiver == Party::Restricted {
            return Err(ApiError::field("Restricted", "Receiver restricted.", DESTINATION));
        }
        if !may_send(sender, receiver) {
            return Err(ApiError::field("Invalid", "Invalid destination.", DESTINATION));
        }
        let amount = body.amount.value;
        if !self.within_limit(&source.owner, sender, amount) {
            let message = "Invalid amount. The supplied amount is greater than your transaction limit.";
            return Err(ApiError::field("Invalid", message, "/amount/value"));
        }
        let from_balance = source.source_type == FundingSourceType::Balance;
        if from_balance && source.balance < amount {
            return Err(ApiError::field("InsufficientFunds", "Insufficient funds.", SOURCE));
        }
        if from_balance {
            self.source_mut(&source.id).balance = source.balance.checked_sub(amount).unwrap_or(Cents::ZERO);
        }
        let id = new_id();
        self.dirty.mark(TRANSFER, &id);
        self.transfers.insert(
            id.clone(),
            TransferRec {
                id: id.clone(),
                source: source.id.clone(),
                destination: destination.id.clone(),
                amount,
                status: TransferStatus::Pending,
                created: now(),
                metadata: body.metadata,
                correlation_id: body.correlation_id,
                debited: from_balance,
                failure: None,
                failed_source: None,
                late_return: None,
            },
        );
        self.transfer_order.push(id.clone());
        self.transfer_events(&id, "created");
        // Balance to balance moves at once; anything through a bank waits
        // for the (simulated) ACH processing.
        if from_balance && destination.source_type == FundingSourceType::Balance {
            self.settle(&id);
        }
        Ok(id)
    }

    /// Sending limits (B4.5, current): $10,000 per transfer for a verified
    /// customer, $5,000 per week (Monday to Sunday, UTC) for an unverified
    /// one; the Account has none.
    fn within_limit(&self, sender: &Owner, party: Party, amount: Cents) -> bool {
        match party {
            Party::Verified => amount <= VERIFIED_TRANSFER_LIMIT,
            Party::Unverified => {
                let today = Utc::now().date_naive();
                let week_start = today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()));
                let sent_this_week: i64 = self
                    .transfers
                    .values()
                    .filter(|t| self.sources[&t.source].owner == *sender && t.created.date_naive() >= week_start)
                    .filter(|t| !matches!(t.status, TransferStatus::Cancelled | TransferStatus::Failed))
                    .map(|t| t.amount.get())
                    .sum();
                sent_this_week + amount.get() <= UNVERIFIED_WEEKLY_LIMIT.get()
            }
            _ => true,
        }
    }

    fn transfer_events(&mut self, id: &str, what: &str) {
        let transfer = &self.transfers[id];
        let owners = [self.sources[&transfer.source].owner.clone(), self.sources[&transfer.destination].owner.clone()];
        let href = self.href(&["transfers", id]);
        let mut seen = Vec::new();
        for owner in owners {
            if seen.contains(&owner) {
                continue;
            }
            match &owner {
                Owner::Account => self.emit(&format!("transfer_{what}"), href.clone(), None),
                Owner::Customer(customer) => {
                    self.emit(&format!("customer_transfer_{what}"), href.clone(), Some(customer));
                }
            }
            seen.push(owner);
        }
    }

    fn transfer_rec(&self, id: &str) -> Result<&TransferRec, ApiError> {
        self.transfers.get(&id.to_ascii_lowercase()).ok_or_else(|| ApiError::not_found("Transfer not found."))
    }

    fn transfer(&self, rec: &TransferRec) -> Transfer {
        let id = rec.id.as_str();
        let source = &self.sources[&rec.source];
        let destination = &self.sources[&rec.destination];
        let (_, source_owner) = self.owner_href(&source.owner);
        let (_, destination_owner) = self.owner_href(&destination.owner);
        let mut links = Links::from([
            ("self".to_owned(), self.link(&["transfers", id], "transfer")),
            ("source".to_owned(), source_owner),
            ("destination".to_owned(), destination_owner),
            ("source-funding-source".to_owned(), self.link(&["funding-sources", &rec.source], "funding-source")),
            (
                "destination-funding-source".to_owned(),
                self.link(&["funding-sources", &rec.destination], "funding-source"),
            ),
        ]);
        if rec.status == TransferStatus::Pending {
            links.insert("cancel".into(), self.link(&["transfers", id], "transfer"));
        }
        if rec.status == TransferStatus::Failed {
            links.insert("failure".into(), self.link(&["transfers", id, "failure"], "failure"));
        }
        Transfer {
            links,
            id: rec.id.clone(),
            status: rec.status,
            amount: Amount::usd(rec.amount),
            created: rec.created,
            metadata: rec.metadata.clone(),
            correlation_id: rec.correlation_id.clone(),
        }
    }

    pub fn read_transfer(&self, id: &str) -> Result<Transfer, ApiError> {
        Ok(self.transfer(self.transfer_rec(id)?))
    }

    pub fn customer_transfers(&self, customer_id: &str) -> Result<Vec<Transfer>, ApiError> {
        let owner = Owner::Customer(self.customer_rec(customer_id)?.id.clone());
        Ok(self
            .transfer_order
            .iter()
            .rev()
            .map(|id| &self.transfers[id])
            .filter(|t| self.sources[&t.source].owner == owner || self.sources[&t.destination].owner == owner)
            .map(|t| self.transfer(t))
            .collect())
    }

    pub fn update_transfer(&mut self, id: &str, update: TransferUpdate) -> Result<Transfer, ApiError> {
        let rec = self.transfer_rec(id)?.clone();
        if update.status != "cancelled" {
            return Err(ApiError::field("Invalid", "Status invalid.", "/status"));
        }
        if rec.status != TransferStatus::Pending {
            return Err(ApiError::field("NotAllowed", "Status not allowed.", "/status"));
        }
        self.refund(&rec.id);
        self.transfer_mut(&rec.id).status = TransferStatus::Cancelled;
        self.transfer_events(&rec.id, "cancelled");
        self.read_transfer(&rec.id)
    }

    fn transfer_mut(&mut self, id: &str) -> &mut TransferRec {
        self.dirty.mark(TRANSFER, id);
        self.transfers.get_mut(id).expect("the transfer was looked up first")
    }

    /// Gives a debited source balance its money back.
    fn refund(&mut self, id: &str) {
        let transfer = self.transfers[id].clone();
        if transfer.debited {
            let source = self.source_mut(&transfer.source);
            source.balance = source.balance.checked_add(transfer.amount).unwrap_or(source.balance);
        }
    }

    fn credit(&mut self, source: &str, amount: Cents, sign: i64) {
        let source = self.source_mut(source);
        if source.source_type == FundingSourceType::Balance {
            let change = Cents::new(amount.get() * sign);
            source.balance = source.balance.checked_add(change).unwrap_or(source.balance);
        }
    }

    fn settle(&mut self, id: &str) {
        let (destination, amount) = (self.transfers[id].destination.clone(), self.transfers[id].amount);
        self.credit(&destination, amount, 1);
        self.transfer_mut(id).status = TransferStatus::Processed;
        self.transfer_events(id, "completed");
    }

    fn fail(&mut self, id: &str, rule: &'static ReturnCodeRule, returned_by: &str) {
        let transfer = self.transfers[id].clone();
        if transfer.status == TransferStatus::Processed {
            self.credit(&transfer.destination, transfer.amount, -1);
        }
        self.refund(id);
        let rec = self.transfer_mut(id);
        rec.status = TransferStatus::Failed;
        rec.failure = Some(rule);
        rec.failed_source = Some(returned_by.to_owned());
        rec.late_return = None;
        self.transfer_events(id, "failed");
        let source = self.sources[returned_by].clone();
        if rule.unverifies && source.status == FundingSourceStatus::Verified {
            self.source_mut(returned_by).status = FundingSourceStatus::Unverified;
            let owner = self.customer_of(&source);
            let topic = self.scoped(owner.as_deref(), "funding_source_unverified");
            let href = self.href(&["funding-sources", returned_by]);
            self.emit(&topic, href, owner.as_deref());
        }
        if rule.removes && !source.removed {
            self.mark_removed(returned_by);
        }
        if let (Some(status), Some(customer)) = (rule.customer, self.customer_of(&source)) {
            self.customer_mut(&customer).status = status;
            let topic = if status == CustomerStatus::Suspended { "customer_suspended" } else { "customer_deactivated" };
            let href = self.href(&["customers", &customer]);
            self.emit(topic, href, Some(&customer));
        }
    }

    pub fn transfer_failure(&self, id: &str) -> Result<TransferFailure, ApiError> {
        let rec = self.transfer_rec(id)?;
        let (Some(rule), Some(source)) = (rec.failure, rec.failed_source.as_deref()) else {
            return Err(ApiError::not_found("Failure not found."));
        };
        let mut links = Links::from([
            ("self".to_owned(), self.link(&["transfers", &rec.id, "failure"], "failure")),
            ("failed-funding-source".to_owned(), self.link(&["funding-sources", source], "funding-source")),
        ]);
        let (rel, owner) = self.owner_href(&self.sources[source].owner);
        links.insert(rel, owner);
        Ok(TransferFailure {
            links,
            code: rule.code.to_owned(),
            description: rule.description.to_owned(),
            explanation: None,
        })
    }

    /// `POST /sandbox-simulations` (B6.1): settles or fails pending bank
    /// transfers (oldest first, at most 500), delivers late returns of
    /// settled ones, and marks pending micro-deposits arrived. Answers how
    /// many transfers changed.
    pub fn simulate(&mut self) -> u64 {
        let mut pending = Vec::new();
        let mut late = Vec::new();
        for id in &self.transfer_order {
            let transfer = &self.transfers[id];
            match (&transfer.status, &transfer.late_return) {
                (TransferStatus::Pending, _) if pending.len() < SIMULATION_BATCH => pending.push(id.clone()),
                (TransferStatus::Processed, Some(_)) => late.push(id.clone()),
                _ => {}
            }
        }
        for id in &late {
            if let Some((rule, source)) = self.transfers[id].late_return.clone() {
                self.fail(id, rule, &source);
            }
        }
        for id in &pending {
            let transfer = &self.transfers[id];
            let sentinel = [&transfer.source, &transfer.destination].into_iter().find_map(|source_id| {
                let source = &self.sources[source_id];
                let is_bank = source.source_type == FundingSourceType::Bank;
                is_bank
                    .then(|| bank::sentinel(&source.name))
                    .flatten()
                    .map(|(rule, late)| (rule, late, source_id.clone()))
            });
            match sentinel {
                Some((rule, false, source)) => self.fail(id, rule, &source),
                Some((rule, true, source)) => {
                    self.settle(id);
                    self.transfer_mut(id).late_return = Some((rule, source));
                }
                None => self.settle(id),
            }
        }
        let arrived: Vec<String> = self
            .sources
            .values()
            .filter(|s| s.micro_deposits.as_ref().is_some_and(|d| d.status == MicroDepositStatus::Pending))
            .map(|s| s.id.clone())
            .collect();
        for id in arrived {
            if let Some(deposits) = self.source_mut(&id).micro_deposits.as_mut() {
                deposits.status = MicroDepositStatus::Processed;
            }
            let owner = self.customer_of(&self.sources[&id]);
            let topic = self.scoped(owner.as_deref(), "microdeposits_completed");
            let href = self.href(&["funding-sources", &id]);
            self.emit(&topic, href, owner.as_deref());
        }
        (pending.len() + late.len()) as u64
    }

    // -----------------------------------------------------------------------
    // Webhook subscriptions (B7.1)

    fn subscription(&self, rec: &SubscriptionRec) -> WebhookSubscription {
        WebhookSubscription {
            links: Links::from([
                ("self".to_owned(), self.link(&["webhook-subscriptions", &rec.id], "webhook-subscription")),
                ("webhooks".to_owned(), self.link(&["webhook-subscriptions", &rec.id, "webhooks"], "webhook")),
            ]),
            id: rec.id.clone(),
            url: rec.url.clone(),
            paused: rec.paused,
            created: rec.created,
        }
    }

    pub fn create_subscription(&mut self, body: NewWebhookSubscription) -> Result<String, ApiError> {
        let mut errors = Vec::new();
        if !url::Url::parse(&body.url).is_ok_and(|url| matches!(url.scheme(), "http" | "https")) {
            errors.push(field_error("Invalid", "Url invalid.", "/url"));
        }
        if body.secret.expose_secret().is_empty() {
            errors.push(field_error("Required", "Secret required.", "/secret"));
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let id = new_id();
        self.dirty.mark(SUBSCRIPTION, &id);
        self.subscriptions.push(SubscriptionRec {
            id: id.clone(),
            url: body.url,
            secret: body.secret,
            paused: false,
            created: now(),
        });
        Ok(id)
    }

    fn subscription_index(&self, id: &str) -> Result<usize, ApiError> {
        self.subscriptions
            .iter()
            .position(|s| s.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| ApiError::not_found("Webhook subscription not found."))
    }

    pub fn read_subscription(&self, id: &str) -> Result<WebhookSubscription, ApiError> {
        Ok(self.subscription(&self.subscriptions[self.subscription_index(id)?]))
    }

    pub fn list_subscriptions(&self) -> Vec<WebhookSubscription> {
        self.subscriptions.iter().map(|s| self.subscription(s)).collect()
    }

    pub fn pause_subscription(&mut self, id: &str, paused: bool) -> Result<WebhookSubscription, ApiError> {
        let index = self.subscription_index(id)?;
        self.subscriptions[index].paused = paused;
        self.dirty.mark(SUBSCRIPTION, &self.subscriptions[index].id.clone());
        Ok(self.subscription(&self.subscriptions[index]))
    }

    pub fn delete_subscription(&mut self, id: &str) -> Result<WebhookSubscription, ApiError> {
        let index = self.subscription_index(id)?;
        let removed = self.subscriptions.remove(index);
        self.dirty.mark(SUBSCRIPTION, &removed.id);
        Ok(self.subscription(&removed))
    }
}

pub(crate) const MAX_MICRO_DEPOSIT_ATTEMPTS: u8 = 3;
const VERIFIED_TRANSFER_LIMIT: Cents = Cents::new(1_000_000);
const UNVERIFIED_WEEKLY_LIMIT: Cents = Cents::new(500_000);

fn is_verified_type(customer_type: CustomerType) -> bool {
    matches!(customer_type, CustomerType::Personal | CustomerType::Business)
}

fn party_of(rec: &CustomerRec) -> Party {
    match (rec.customer_type, rec.status) {
        (_, CustomerStatus::Suspended | CustomerStatus::Deactivated) => Party::Restricted,
        (CustomerType::ReceiveOnly, _) => Party::ReceiveOnly,
        (CustomerType::Personal | CustomerType::Business, CustomerStatus::Verified) => Party::Verified,
        // Unverified customers, and verified types still in verification.
        _ => Party::Unverified,
    }
}

/// The permission matrix (B5, current docs): every transfer needs a verified
/// party (the Account counts); receive-only customers only receive.
fn may_send(sender: Party, receiver: Party) -> bool {
    match sender {
        Party::Account | Party::Verified => receiver != Party::Restricted,
        Party::Unverified => matches!(receiver, Party::Account | Party::Verified),
        Party::ReceiveOnly | Party::Restricted => false,
    }
}

/// The status a new (or upgraded) customer starts in: the sandbox reads the
/// verification outcome from `firstName` (personal) or `businessName`.
fn initial_status(customer_type: CustomerType, first_name: &str, business_name: Option<&str>) -> CustomerStatus {
    let sentinel = match customer_type {
        CustomerType::Personal => first_name,
        CustomerType::Business => business_name.unwrap_or_default(),
        _ => return CustomerStatus::Unverified,
    };
    match sentinel.trim().to_ascii_lowercase().as_str() {
        "retry" => CustomerStatus::Retry,
        "document" => CustomerStatus::Document,
        "suspended" => CustomerStatus::Suspended,
        "kba" if customer_type == CustomerType::Personal => CustomerStatus::Kba,
        _ => CustomerStatus::Verified,
    }
}

const FORBIDDEN_NAME_CHARACTERS: &str = "<>=\"`!?%~${}\\";

fn check_name(value: &str, field: &str, path: &str) -> Option<donkies_dwolla::wire::FieldError> {
    if value.trim().is_empty() {
        return Some(field_error("Required", &format!("{field} required."), path));
    }
    if value.chars().count() > 50 || value.chars().any(|c| FORBIDDEN_NAME_CHARACTERS.contains(c)) {
        return Some(field_error("Invalid", &format!("{field} invalid."), path));
    }
    None
}

fn check_names(first: &str, last: &str, email: &str) -> Vec<donkies_dwolla::wire::FieldError> {
    let mut errors: Vec<_> = [check_name(first, "FirstName", "/firstName"), check_name(last, "LastName", "/lastName")]
        .into_iter()
        .flatten()
        .collect();
    let (local, domain) = email.split_once('@').unwrap_or_default();
    if email.trim().is_empty() {
        errors.push(field_error("Required", "Email required.", "/email"));
    } else if local.is_empty() || !domain.contains('.') || email.contains(char::is_whitespace) {
        errors.push(field_error("InvalidFormat", "Email is invalid.", "/email"));
    }
    errors
}

fn check_source_name(name: &str) -> Option<donkies_dwolla::wire::FieldError> {
    if name.trim().is_empty() {
        Some(field_error("Required", "Name required.", "/name"))
    } else if name.chars().count() > 50 {
        Some(field_error("Invalid", "Invalid bank name.", "/name"))
    } else {
        None
    }
}

/// The fields a customer type needs beyond names and email (B2.1); a retry
/// needs all nine digits of the SSN.
fn check_type_fields(
    customer_type: CustomerType,
    details: &CustomerDetails,
    retry: bool,
) -> Vec<donkies_dwolla::wire::FieldError> {
    if customer_type == CustomerType::Other {
        return vec![field_error("Invalid", "Type invalid.", "/type")];
    }
    if !is_verified_type(customer_type) {
        return Vec::new();
    }
    let mut errors = Vec::new();
    let mut require = |value: Option<&str>, field: &str, path: &str, valid: &dyn Fn(&str) -> bool| match value {
        None | Some("") => errors.push(field_error("Required", &format!("{field} required."), path)),
        Some(value) if !valid(value) => errors.push(field_error("Invalid", &format!("{field} invalid."), path)),
        Some(_) => {}
    };
    let address = &details.address;
    require(address.address1.as_deref(), "Address1", "/address1", &|v| v.len() <= 50 && !is_po_box(v));
    require(address.city.as_deref(), "City", "/city", &|v| v.len() <= 50);
    require(address.state.as_deref(), "State", "/state", &|v| {
        v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphabetic())
    });
    require(address.postal_code.as_deref(), "PostalCode", "/postalCode", &is_postal_code);
    require(details.date_of_birth.as_deref(), "DateOfBirth", "/dateOfBirth", &is_adult_birth_date);
    let ssn_lengths: &[usize] = if retry { &[9] } else { &[4, 9] };
    let ssn = details.ssn.as_ref().map(SecretString::expose_secret);
    require(ssn, "Ssn", "/ssn", &|v| ssn_lengths.contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()));
    if customer_type == CustomerType::Business {
        require(details.business_name.as_deref(), "BusinessName", "/businessName", &|v| v.len() <= 255);
    }
    if let Some(phone) = address.phone.as_deref()
        && (phone.len() != 10 || !phone.bytes().all(|b| b.is_ascii_digit()))
    {
        errors.push(field_error("Invalid", "Phone invalid.", "/phone"));
    }
    errors
}

fn is_po_box(address: &str) -> bool {
    let compact: String = address.to_ascii_lowercase().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    compact.starts_with("pobox") || compact.starts_with("postofficebox")
}

fn is_postal_code(code: &str) -> bool {
    let digits = |part: &str, n: usize| part.len() == n && part.bytes().all(|b| b.is_ascii_digit());
    match code.split_once('-') {
        Some((zip, plus4)) => digits(zip, 5) && digits(plus4, 4),
        None => digits(code, 5),
    }
}

/// `YYYY-MM-DD` of someone aged 18 to 125.
fn is_adult_birth_date(date: &str) -> bool {
    let Ok(birth) = NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
        return false;
    };
    let today = Utc::now().date_naive();
    let age = today.years_since(birth).unwrap_or(0);
    (18..=125).contains(&age)
}

fn merge_address(current: &Address, change: Address) -> Address {
    Address {
        address1: change.address1.or(current.address1.clone()),
        address2: change.address2.or(current.address2.clone()),
        city: change.city.or(current.city.clone()),
        state: change.state.or(current.state.clone()),
        postal_code: change.postal_code.or(current.postal_code.clone()),
        phone: change.phone.or(current.phone.clone()),
    }
}

fn fingerprint(routing: &str, account: &str) -> String {
    use sha2::{Digest, Sha256};
    hex_lower(&Sha256::digest(format!("{routing}:{account}").as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_refuses_unverified_to_unverified_and_receive_only_senders() {
        use Party::*;
        assert!(may_send(Account, ReceiveOnly));
        assert!(may_send(Verified, ReceiveOnly));
        assert!(may_send(Unverified, Verified));
        assert!(may_send(Unverified, Account));
        assert!(!may_send(Unverified, Unverified));
        assert!(!may_send(Unverified, ReceiveOnly));
        assert!(!may_send(ReceiveOnly, Account));
    }

    #[test]
    fn first_names_choose_the_verification_outcome() {
        assert_eq!(initial_status(CustomerType::Personal, "Retry", None), CustomerStatus::Retry);
        assert_eq!(initial_status(CustomerType::Personal, "document", None), CustomerStatus::Document);
        assert_eq!(initial_status(CustomerType::Personal, "Jane", None), CustomerStatus::Verified);
        assert_eq!(initial_status(CustomerType::ReceiveOnly, "retry", None), CustomerStatus::Unverified);
    }
}
