//! The Dwolla client against the simulator, in process, over real HTTP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::NaiveDate;
use donkies_dwolla::wire::{
    BankAccountType, CustomerQuery, CustomerStatus, CustomerType, CustomerUpdate, FundingSourceStatus,
    FundingSourceType, MEDIA_TYPE, MicroDepositStatus, NewCustomer, NewFundingSource, PageQuery, PersonalDetails,
    SIGNATURE_HEADER, TOPIC_HEADER, TransferStatus,
};
use donkies_dwolla::{
    Cents, DwollaClient, DwollaConfig, DwollaError, ExposeSecret, PaymentRail, ProviderFailure, SecretString,
    TransferDestination, TransferRequest, WebhookError, WebhookVerifier,
};
use donkies_sandbox::{
    DwollaSim, DwollaSimConfig, DwollaSimStats, Faults, SANDBOX_DWOLLA_KEY, SANDBOX_DWOLLA_SECRET,
    SANDBOX_ROUTING_NUMBER,
};
use futures::future::join_all;
use serde_json::{Value, json};

struct TestApp {
    sim: DwollaSim,
    dwolla: DwollaClient,
}

static KEYS: AtomicU64 = AtomicU64::new(0);

/// A fresh idempotency key, as the server derives from its own record.
fn key() -> String {
    format!("donkies-test-{}-{}", std::process::id(), KEYS.fetch_add(1, Ordering::Relaxed))
}

fn unique_email(name: &str) -> String {
    format!("{name}-{}@example.com", KEYS.fetch_add(1, Ordering::Relaxed))
}

fn details() -> PersonalDetails {
    PersonalDetails {
        address1: "462 Main Street".into(),
        address2: None,
        city: "Des Moines".into(),
        state: "IA".into(),
        postal_code: "50309".into(),
        date_of_birth: NaiveDate::from_ymd_opt(1980, 1, 1).unwrap(),
        ssn: SecretString::from("1234"),
        phone: None,
    }
}

fn personal(first_name: &str) -> NewCustomer {
    NewCustomer::personal(first_name, "Merchant", &unique_email("personal"), details())
}

fn cents(value: i64) -> Cents {
    Cents::new(value)
}

fn client_for(sim: &DwollaSim, secret: &str, timeout: Duration) -> DwollaClient {
    let config = DwollaConfig::new(sim.base_url(), SANDBOX_DWOLLA_KEY, secret).with_timeout(timeout);
    DwollaClient::new(config).unwrap()
}

impl TestApp {
    async fn start() -> Self {
        Self::start_with(DwollaSimConfig::default()).await
    }

    async fn start_with(config: DwollaSimConfig) -> Self {
        let sim = DwollaSim::start("127.0.0.1:0".parse().unwrap(), config).await.expect("simulator starts");
        let dwolla = client_for(&sim, SANDBOX_DWOLLA_SECRET, Duration::from_secs(5));
        Self { sim, dwolla }
    }

    async fn customer(&self, customer: NewCustomer) -> String {
        self.dwolla.create_customer(&customer, &key()).await.unwrap()
    }

    async fn unverified(&self) -> String {
        self.customer(NewCustomer::unverified("Una", "Verified", &unique_email("unverified"))).await
    }

    async fn receive_only(&self) -> String {
        self.customer(NewCustomer::receive_only("Rita", "Receiver", &unique_email("receiver"))).await
    }

    /// A bank added with numbers: unverified until micro-deposits.
    async fn bank(&self, customer: &str, name: &str) -> String {
        let account = format!("{:08}", KEYS.fetch_add(1, Ordering::Relaxed));
        let source = NewFundingSource::bank(SANDBOX_ROUTING_NUMBER, &account, BankAccountType::Checking, name);
        self.dwolla.create_funding_source(customer, &source, &key()).await.unwrap()
    }

    /// The user finishing the hosted IAV of `token`.
    async fn finish_iav(&self, token: &str, body: Value) -> (u16, Value) {
        let url = self.sim.base_url().join(&format!("__sim/iav/{token}")).unwrap();
        let response = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// A bank verified through IAV, named `name`.
    async fn verified_bank(&self, customer: &str, name: &str) -> String {
        let token = self.dwolla.iav_token(customer).await.unwrap();
        let account = format!("{:09}", KEYS.fetch_add(1, Ordering::Relaxed));
        let (status, body) =
            self.finish_iav(token.expose_secret(), json!({"name": name, "accountNumber": account})).await;
        assert_eq!(status, 200, "{body}");
        let href = body["_links"]["funding-source"]["href"].as_str().unwrap();
        href.rsplit('/').next().unwrap().to_owned()
    }

    async fn account_balance(&self) -> String {
        self.dwolla.account_balance_funding_source().await.unwrap().id
    }

    async fn balance_of(&self, funding_source: &str) -> Cents {
        self.dwolla.funding_source_balance(funding_source).await.unwrap().balance.value
    }

    async fn customer_balance(&self, customer: &str) -> String {
        let sources = self.dwolla.customer_funding_sources(customer, false).await.unwrap();
        sources.into_iter().find(|s| s.source_type == FundingSourceType::Balance).expect("a balance").id
    }

    async fn send(&self, source: &str, destination: &str, amount: i64) -> Result<String, DwollaError> {
        self.dwolla.create_transfer(&TransferRequest::between(source, destination, cents(amount)), &key()).await
    }

    async fn status_of(&self, transfer: &str) -> TransferStatus {
        self.dwolla.transfer(transfer).await.unwrap().status
    }

    async fn simulate(&self) {
        self.dwolla.simulate_processing().await.unwrap();
    }
}

fn assert_field_error(error: &DwollaError, path: &str, message: &str) {
    let found = error.field_errors().iter().any(|e| e.path.as_deref() == Some(path) && e.message == message);
    assert!(found, "expected {message:?} at {path}, got {error:?}");
}

// ---------------------------------------------------------------------------
// Token

#[tokio::test]
async fn a_token_is_requested_once_and_reused_across_calls() {
    let app = TestApp::start().await;
    app.dwolla.root().await.unwrap();
    app.dwolla.account_id().await.unwrap();
    app.unverified().await;
    assert_eq!(app.sim.handle().token_requests(), 1);
    // The same counters over HTTP, for a simulator in another process.
    let stats: DwollaSimStats =
        reqwest::get(app.sim.base_url().join("__sim/stats").unwrap()).await.unwrap().json().await.unwrap();
    assert_eq!(stats, DwollaSimStats { token_requests: 1, rejected_tokens: 0, webhook_attempts: 0 });
}

#[tokio::test]
async fn concurrent_first_callers_cause_one_token_request() {
    let app = TestApp::start().await;
    let calls = (0..16).map(|_| app.dwolla.root());
    for result in join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(app.sim.handle().token_requests(), 1);
}

#[tokio::test]
async fn a_token_near_its_expiry_is_renewed_before_dwolla_refuses_it() {
    let config = DwollaSimConfig { token_lifetime: Duration::from_secs(1), ..DwollaSimConfig::default() };
    let app = TestApp::start_with(config).await;
    app.dwolla.root().await.unwrap();
    tokio::time::sleep(Duration::from_millis(950)).await;
    app.dwolla.root().await.unwrap();
    assert_eq!(app.sim.handle().token_requests(), 2);
    assert_eq!(app.sim.handle().rejected_tokens(), 0);
}

#[tokio::test]
async fn concurrent_callers_refused_an_expired_token_share_one_renewal_and_retry() {
    let app = TestApp::start().await;
    app.dwolla.root().await.unwrap();
    app.sim.handle().expire_tokens();
    for result in join_all((0..8).map(|_| app.dwolla.root())).await {
        result.unwrap();
    }
    assert_eq!(app.sim.handle().token_requests(), 2);
    assert!(app.sim.handle().rejected_tokens() >= 1);
}

#[tokio::test]
async fn an_invalid_token_is_renewed_once_and_the_request_retried() {
    let app = TestApp::start().await;
    app.dwolla.root().await.unwrap();
    app.sim.handle().revoke_tokens();
    let id = app.unverified().await;
    assert!(!id.is_empty());
    assert_eq!(app.sim.handle().token_requests(), 2);
    assert_eq!(app.sim.handle().rejected_tokens(), 1);
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_that_is_not_retried() {
    let app = TestApp::start().await;
    let wrong = client_for(&app.sim, "not-the-secret", Duration::from_secs(5));
    let error = wrong.root().await.unwrap_err();
    assert!(matches!(&error, DwollaError::Auth { status: 401, code, .. } if code == "invalid_client"), "{error:?}");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn requests_without_the_dwolla_media_type_or_token_are_refused() {
    let app = TestApp::start().await;
    let http = reqwest::Client::new();
    let token: Value = http
        .post(app.sim.base_url().join("token").unwrap())
        .basic_auth(SANDBOX_DWOLLA_KEY, Some(SANDBOX_DWOLLA_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["expires_in"], 3600);
    let access = token["access_token"].as_str().unwrap();
    let root = app.sim.base_url();
    let plain = http.get(root.clone()).bearer_auth(access).header("Accept", "application/json").send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::NOT_ACCEPTABLE);
    assert_eq!(plain.json::<Value>().await.unwrap()["code"], "InvalidVersion");
    let anonymous = http.get(root.clone()).header("Accept", MEDIA_TYPE).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let good = http.get(root).bearer_auth(access).header("Accept", MEDIA_TYPE).send().await.unwrap();
    assert_eq!(good.headers()["content-type"], MEDIA_TYPE);
}

#[tokio::test]
async fn the_2016_form_body_credentials_also_get_a_token() {
    let app = TestApp::start().await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", SANDBOX_DWOLLA_KEY),
        ("client_secret", SANDBOX_DWOLLA_SECRET),
    ];
    let url = app.sim.base_url().join("token").unwrap();
    let response = reqwest::Client::new().post(url.clone()).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let wrong = [("grant_type", "password")];
    let response = reqwest::Client::new().post(url).form(&wrong).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn an_answer_outside_the_dwolla_protocol_is_an_other_error() {
    let teapot = axum::Router::new().fallback(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap()).parse().unwrap();
    tokio::spawn(async move { axum::serve(listener, teapot).await });
    let client = DwollaClient::new(DwollaConfig::new(url, SANDBOX_DWOLLA_KEY, SANDBOX_DWOLLA_SECRET)).unwrap();
    let error = client.root().await.unwrap_err();
    assert!(matches!(&error, DwollaError::Other { status: Some(418), message, .. } if message == "short and stout"));
    assert!(!error.is_retryable());
}

// ---------------------------------------------------------------------------
// Account and customers

#[tokio::test]
async fn the_root_links_the_account_whose_balance_holds_the_sandbox_money() {
    let app = TestApp::start().await;
    let account = app.dwolla.account_id().await.unwrap();
    assert_eq!(account, app.sim.handle().account_id());
    let sources = app.dwolla.account_funding_sources(&account).await.unwrap();
    let balance = sources.iter().find(|s| s.source_type == FundingSourceType::Balance).unwrap();
    assert_eq!((balance.name.as_str(), balance.status), ("Balance", FundingSourceStatus::Verified));
    assert!(sources.iter().any(|s| s.source_type == FundingSourceType::Bank));
    assert_eq!(app.balance_of(&balance.id).await, cents(500_000));
}

#[tokio::test]
async fn customers_of_every_type_are_created_read_and_found_by_email() {
    let app = TestApp::start().await;
    let unverified = app.unverified().await;
    let receiver = app.receive_only().await;
    let personal_body = personal("Jane");
    let email = personal_body.email.clone();
    let verified = app.customer(personal_body).await;

    let read = app.dwolla.customer(&unverified).await.unwrap();
    assert_eq!((read.customer_type, read.status), (CustomerType::Unverified, CustomerStatus::Unverified));
    assert!(read.links.contains_key("send"));
    let read = app.dwolla.customer(&receiver).await.unwrap();
    assert_eq!((read.customer_type, read.status), (CustomerType::ReceiveOnly, CustomerStatus::Unverified));
    assert!(!read.links.contains_key("send"));
    let read = app.dwolla.customer(&verified).await.unwrap();
    assert_eq!((read.customer_type, read.status), (CustomerType::Personal, CustomerStatus::Verified));
    assert_eq!(read.address.city.as_deref(), Some("Des Moines"));

    let found = app.dwolla.customer_by_email(&email.to_uppercase()).await.unwrap().unwrap();
    assert_eq!(found.id, verified);
    assert!(app.dwolla.customer_by_email("nobody@example.com").await.unwrap().is_none());
    let query = CustomerQuery { search: Some("rita".into()), ..CustomerQuery::default() };
    let page = app.dwolla.search_customers(&query).await.unwrap();
    assert_eq!((page.total, page.items[0].id.as_str()), (1, receiver.as_str()));
}

#[tokio::test]
async fn customer_lists_are_paged_with_a_total() {
    let app = TestApp::start().await;
    for _ in 0..3 {
        app.unverified().await;
    }
    let query = CustomerQuery { limit: Some(2), offset: Some(2), ..CustomerQuery::default() };
    let page = app.dwolla.search_customers(&query).await.unwrap();
    assert_eq!((page.total, page.items.len()), (3, 1));
}

#[tokio::test]
async fn first_name_sentinels_set_the_verification_status() {
    let app = TestApp::start().await;
    for (name, status) in [
        ("retry", CustomerStatus::Retry),
        ("document", CustomerStatus::Document),
        ("suspended", CustomerStatus::Suspended),
        ("kba", CustomerStatus::Kba),
        ("verified", CustomerStatus::Verified),
    ] {
        let id = app.customer(personal(name)).await;
        assert_eq!(app.dwolla.customer(&id).await.unwrap().status, status, "{name}");
    }
}

#[tokio::test]
async fn a_duplicate_email_is_a_duplicate_linking_the_existing_customer() {
    let app = TestApp::start().await;
    let email = unique_email("twice");
    let first = app.customer(NewCustomer::unverified("First", "Try", &email)).await;
    let error =
        app.dwolla.create_customer(&NewCustomer::unverified("Second", "Try", &email), &key()).await.unwrap_err();
    let DwollaError::Duplicate { existing, .. } = &error else { panic!("not a duplicate: {error:?}") };
    assert!(existing.as_deref().unwrap().ends_with(&format!("/customers/{first}")));
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn missing_and_malformed_fields_are_validation_errors_with_their_paths() {
    let app = TestApp::start().await;
    let mut body = personal("Jane");
    body.email = "not-an-email".into();
    body.details.ssn = None;
    body.details.address.state = Some("Iowa".into());
    let error = app.dwolla.create_customer(&body, &key()).await.unwrap_err();
    assert!(matches!(error, DwollaError::Validation { .. }), "{error:?}");
    assert!(error.has_error_at("/email") && error.has_error_at("/ssn") && error.has_error_at("/state"), "{error:?}");
    let codes: Vec<&str> = error.field_errors().iter().map(|e| e.code.as_str()).collect();
    assert!(codes.contains(&"InvalidFormat") && codes.contains(&"Required"), "{codes:?}");
}

#[tokio::test]
async fn an_unverified_customer_is_upgraded_to_a_verified_one_with_a_balance() {
    let app = TestApp::start().await;
    let email = unique_email("upgrade");
    let id = app.customer(NewCustomer::unverified("Ursula", "Upgrade", &email)).await;
    let upgrade = CustomerUpdate::upgrade(NewCustomer::personal("Ursula", "Upgrade", &email, details()));
    let customer = app.dwolla.update_customer(&id, &upgrade).await.unwrap();
    assert_eq!((customer.customer_type, customer.status), (CustomerType::Personal, CustomerStatus::Verified));
    app.customer_balance(&id).await;
}

#[tokio::test]
async fn a_retry_customer_verifies_only_with_all_nine_ssn_digits() {
    let app = TestApp::start().await;
    let body = personal("retry");
    let id = app.customer(body.clone()).await;
    let mut retry = CustomerUpdate::upgrade(body);
    let error = app.dwolla.update_customer(&id, &retry).await.unwrap_err();
    assert!(error.has_error_at("/ssn"), "{error:?}");
    retry.details.ssn = Some(SecretString::from("123456789"));
    let customer = app.dwolla.update_customer(&id, &retry).await.unwrap();
    assert_eq!(customer.status, CustomerStatus::Verified);
}

#[tokio::test]
async fn a_suspended_customer_cannot_be_modified() {
    let app = TestApp::start().await;
    let id = app.unverified().await;
    let suspended = app.dwolla.update_customer(&id, &CustomerUpdate::suspend()).await.unwrap();
    assert_eq!(suspended.status, CustomerStatus::Suspended);
    let rename = CustomerUpdate { first_name: Some("New".into()), ..CustomerUpdate::default() };
    let error = app.dwolla.update_customer(&id, &rename).await.unwrap_err();
    assert!(matches!(error, DwollaError::InvalidResourceState { .. }), "{error:?}");
}

#[tokio::test]
async fn an_unverified_customer_changes_name_and_email() {
    let app = TestApp::start().await;
    let id = app.unverified().await;
    let email = unique_email("renamed");
    let update =
        CustomerUpdate { first_name: Some("Renamed".into()), email: Some(email.clone()), ..Default::default() };
    let customer = app.dwolla.update_customer(&id, &update).await.unwrap();
    assert_eq!((customer.first_name.as_str(), customer.email.as_str()), ("Renamed", email.as_str()));
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let app = TestApp::start().await;
    let missing = "00000000-0000-4000-8000-000000000000";
    assert!(matches!(app.dwolla.customer(missing).await, Err(DwollaError::NotFound { .. })));
    assert!(matches!(app.dwolla.funding_source(missing).await, Err(DwollaError::NotFound { .. })));
    assert!(matches!(app.dwolla.transfer(missing).await, Err(DwollaError::NotFound { .. })));
    assert!(matches!(app.dwolla.event(missing).await, Err(DwollaError::NotFound { .. })));
    assert!(matches!(app.dwolla.iav_token(missing).await, Err(DwollaError::NotFound { .. })));
}

// ---------------------------------------------------------------------------
// Funding sources

#[tokio::test]
async fn funding_sources_are_created_listed_renamed_and_removed() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.bank(&customer, "Everyday checking").await;
    let read = app.dwolla.funding_source(&bank).await.unwrap();
    assert_eq!((read.source_type, read.status), (FundingSourceType::Bank, FundingSourceStatus::Unverified));
    assert_eq!(read.bank_account_type, Some(BankAccountType::Checking));
    assert!(read.links.contains_key("initiate-micro-deposits"));

    let renamed = app.dwolla.rename_funding_source(&bank, "Rainy day").await.unwrap();
    assert_eq!(renamed.name, "Rainy day");
    let listed = app.dwolla.customer_funding_sources(&customer, false).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [bank.as_str()]);

    let removed = app.dwolla.remove_funding_source(&bank).await.unwrap();
    assert!(removed.removed);
    assert!(app.dwolla.customer_funding_sources(&customer, false).await.unwrap().is_empty());
    assert_eq!(app.dwolla.customer_funding_sources(&customer, true).await.unwrap().len(), 1);
    let error = app.dwolla.rename_funding_source(&bank, "Again").await.unwrap_err();
    assert!(matches!(error, DwollaError::InvalidResourceState { .. }), "{error:?}");
}

#[tokio::test]
async fn a_balance_cannot_be_removed() {
    let app = TestApp::start().await;
    let balance = app.account_balance().await;
    let error = app.dwolla.remove_funding_source(&balance).await.unwrap_err();
    assert!(matches!(error, DwollaError::InvalidResourceState { .. }), "{error:?}");
}

#[tokio::test]
async fn a_bad_routing_number_or_account_number_is_refused_at_its_path() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let source = NewFundingSource::bank("222222222", "12", BankAccountType::Savings, "Bad");
    let error = app.dwolla.create_funding_source(&customer, &source, &key()).await.unwrap_err();
    assert!(error.has_error_at("/routingNumber") && error.has_error_at("/accountNumber"), "{error:?}");
}

#[tokio::test]
async fn the_same_bank_twice_is_a_duplicate_naming_the_first() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let source = NewFundingSource::bank(SANDBOX_ROUTING_NUMBER, "123456789", BankAccountType::Checking, "Mine");
    let first = app.dwolla.create_funding_source(&customer, &source, &key()).await.unwrap();
    let error = app.dwolla.create_funding_source(&customer, &source, &key()).await.unwrap_err();
    let DwollaError::Duplicate { existing, .. } = &error else { panic!("not a duplicate: {error:?}") };
    assert!(existing.as_deref().unwrap().ends_with(&format!("/funding-sources/{first}")));
}

#[tokio::test]
async fn small_micro_deposit_amounts_verify_the_bank() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.bank(&customer, "Checking").await;
    app.dwolla.initiate_micro_deposits(&bank, &key()).await.unwrap();
    let error = app.dwolla.initiate_micro_deposits(&bank, &key()).await.unwrap_err();
    assert!(matches!(&error, DwollaError::InvalidResourceState { code, .. } if code == "MaxNumberOfResources"));
    assert_eq!(app.dwolla.micro_deposits(&bank).await.unwrap().status, MicroDepositStatus::Pending);
    app.dwolla.verify_micro_deposits(&bank, cents(3), cents(7)).await.unwrap();
    assert_eq!(app.dwolla.funding_source(&bank).await.unwrap().status, FundingSourceStatus::Verified);
    let error = app.dwolla.verify_micro_deposits(&bank, cents(3), cents(7)).await.unwrap_err();
    assert!(matches!(error, DwollaError::InvalidResourceState { .. }), "{error:?}");
}

#[tokio::test]
async fn three_wrong_micro_deposit_guesses_exhaust_the_attempts() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.bank(&customer, "Checking").await;
    app.dwolla.initiate_micro_deposits(&bank, &key()).await.unwrap();
    for _ in 0..3 {
        let error = app.dwolla.verify_micro_deposits(&bank, cents(9), cents(9)).await.unwrap_err();
        assert_field_error(&error, "/amount1/value", "Wrong amount(s).");
    }
    let error = app.dwolla.verify_micro_deposits(&bank, cents(3), cents(7)).await.unwrap_err();
    assert!(matches!(&error, DwollaError::InvalidResourceState { message, .. } if message == "Too many attempts."));
    assert_eq!(app.dwolla.micro_deposits(&bank).await.unwrap().status, MicroDepositStatus::Failed);
    let source = app.dwolla.funding_source(&bank).await.unwrap();
    assert_eq!(source.status, FundingSourceStatus::Unverified);
    assert!(source.links.contains_key("failed-verification-micro-deposits"));
}

#[tokio::test]
async fn micro_deposits_arrive_when_processing_is_simulated() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.bank(&customer, "Checking").await;
    assert!(matches!(app.dwolla.micro_deposits(&bank).await, Err(DwollaError::NotFound { .. })));
    app.dwolla.initiate_micro_deposits(&bank, &key()).await.unwrap();
    app.simulate().await;
    assert_eq!(app.dwolla.micro_deposits(&bank).await.unwrap().status, MicroDepositStatus::Processed);
}

#[tokio::test]
async fn iav_creates_a_verified_bank_for_the_tokens_customer_once() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let token = app.dwolla.iav_token(&customer).await.unwrap();
    let (status, body) = app.finish_iav(token.expose_secret(), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let href = body["_links"]["funding-source"]["href"].as_str().unwrap();
    let source = app.dwolla.funding_source(href.rsplit('/').next().unwrap()).await.unwrap();
    assert_eq!(
        (source.status, source.bank_account_type),
        (FundingSourceStatus::Verified, Some(BankAccountType::Checking))
    );
    assert!(source.links["customer"].href.ends_with(&customer));
    let (again, _) = app.finish_iav(token.expose_secret(), json!({})).await;
    assert_eq!(again, 404);
}

// ---------------------------------------------------------------------------
// Transfers

#[tokio::test]
async fn a_bank_transfer_stays_pending_until_a_simulation_processes_it() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.verified_bank(&customer, "Round-ups").await;
    let account = app.account_balance().await;
    let before = app.balance_of(&account).await;
    let request = TransferRequest::between(&bank, &account, cents(137)).with_metadata("roundup", "42");
    let id = app.dwolla.create_transfer(&request, &key()).await.unwrap();
    let transfer = app.dwolla.transfer(&id).await.unwrap();
    assert_eq!((transfer.status, transfer.amount.value), (TransferStatus::Pending, cents(137)));
    assert_eq!(transfer.metadata.unwrap()["roundup"], "42");
    assert!(transfer.links.contains_key("cancel"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.status_of(&id).await, TransferStatus::Pending);
    assert_eq!(app.dwolla.simulate_processing().await.unwrap(), 1);
    assert_eq!(app.status_of(&id).await, TransferStatus::Processed);
    assert_eq!(app.balance_of(&account).await, before.checked_add(cents(137)).unwrap());
}

#[tokio::test]
async fn an_automatic_processing_interval_settles_transfers_by_itself() {
    let config = DwollaSimConfig { processing_interval: Some(Duration::from_millis(30)), ..DwollaSimConfig::default() };
    let app = TestApp::start_with(config).await;
    let customer = app.unverified().await;
    let bank = app.verified_bank(&customer, "Checking").await;
    let id = app.send(&bank, &app.account_balance().await, 100).await.unwrap();
    for _ in 0..100 {
        if app.status_of(&id).await == TransferStatus::Processed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the transfer was never processed");
}

#[tokio::test]
async fn an_r01_named_source_fails_the_transfer_with_its_return_code() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.verified_bank(&customer, "R01").await;
    let id = app.send(&bank, &app.account_balance().await, 500).await.unwrap();
    app.simulate().await;
    let transfer = app.dwolla.transfer(&id).await.unwrap();
    assert_eq!(transfer.status, TransferStatus::Failed);
    assert!(transfer.links.contains_key("failure"));
    let failure = app.dwolla.transfer_failure(&id).await.unwrap();
    assert_eq!((failure.code.as_str(), failure.description.as_str()), ("R01", "Insufficient Funds"));
    let source = app.dwolla.funding_source(&bank).await.unwrap();
    assert!(!source.removed && source.status == FundingSourceStatus::Verified);
}

#[tokio::test]
async fn an_r03_named_destination_fails_the_transfer_and_removes_the_bank() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.bank(&customer, "R03").await;
    let account = app.account_balance().await;
    let before = app.balance_of(&account).await;
    let id = app.send(&account, &bank, 250).await.unwrap();
    assert_eq!(app.balance_of(&account).await, before.checked_sub(cents(250)).unwrap());
    app.simulate().await;
    assert_eq!(app.status_of(&id).await, TransferStatus::Failed);
    assert_eq!(app.dwolla.transfer_failure(&id).await.unwrap().code, "R03");
    assert!(app.dwolla.funding_source(&bank).await.unwrap().removed);
    assert_eq!(app.balance_of(&account).await, before, "the failed transfer's money comes back");
}

#[tokio::test]
async fn a_late_return_fails_a_transfer_after_it_was_processed() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.verified_bank(&customer, "R01-late").await;
    let id = app.send(&bank, &app.account_balance().await, 100).await.unwrap();
    app.simulate().await;
    assert_eq!(app.status_of(&id).await, TransferStatus::Processed);
    app.simulate().await;
    assert_eq!(app.status_of(&id).await, TransferStatus::Failed);
    assert_eq!(app.dwolla.transfer_failure(&id).await.unwrap().code, "R01");
}

#[tokio::test]
async fn balance_transfers_move_at_once_and_need_the_funds() {
    let app = TestApp::start().await;
    let customer = app.customer(personal("Vera")).await;
    let customer_balance = app.customer_balance(&customer).await;
    let account = app.account_balance().await;
    let id = app.send(&account, &customer_balance, 1_000).await.unwrap();
    assert_eq!(app.status_of(&id).await, TransferStatus::Processed);
    assert_eq!(app.balance_of(&customer_balance).await, cents(1_000));
    let error = app.send(&customer_balance, &account, 1_001).await.unwrap_err();
    assert_field_error(&error, "/_links/source/href", "Insufficient funds.");
    assert_eq!(error.field_errors()[0].code, "InsufficientFunds");
}

#[tokio::test]
async fn the_permission_matrix_refuses_pairs_without_a_verified_party() {
    let app = TestApp::start().await;
    let (sender, other) = (app.unverified().await, app.unverified().await);
    let sender_bank = app.verified_bank(&sender, "Sender").await;
    let other_bank = app.verified_bank(&other, "Other").await;
    let receiver = app.receive_only().await;
    let receiver_bank = app.bank(&receiver, "Receiver").await;
    let receiver_verified = app.verified_bank(&receiver, "Receiver verified").await;
    let account = app.account_balance().await;

    for (from, to) in [(&sender_bank, &other_bank), (&sender_bank, &receiver_bank), (&receiver_verified, &account)] {
        let error = app.send(from, to, 100).await.unwrap_err();
        assert_field_error(&error, "/_links/destination/href", "Invalid destination.");
    }
    let verified = app.customer(personal("Vic")).await;
    let verified_balance = app.customer_balance(&verified).await;
    app.send(&account, &verified_balance, 5_000).await.unwrap();
    for (from, to) in [
        (&sender_bank, &account),
        (&sender_bank, &verified_balance),
        (&account, &receiver_bank),
        (&verified_balance, &receiver_bank),
        (&verified_balance, &other_bank),
    ] {
        app.send(from, to, 100).await.unwrap_or_else(|e| panic!("{from} → {to} refused: {e}"));
    }
}

#[tokio::test]
async fn an_unverified_customer_may_send_five_thousand_dollars_a_week() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.verified_bank(&customer, "Checking").await;
    let account = app.account_balance().await;
    app.send(&bank, &account, 400_000).await.unwrap();
    let error = app.send(&bank, &account, 100_001).await.unwrap_err();
    let message = "Invalid amount. The supplied amount is greater than your transaction limit.";
    assert_field_error(&error, "/amount/value", message);
    app.send(&bank, &account, 100_000).await.unwrap();
}

#[tokio::test]
async fn an_unverified_bank_cannot_send() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.bank(&customer, "Unverified").await;
    let error = app.send(&bank, &app.account_balance().await, 100).await.unwrap_err();
    assert_field_error(&error, "/_links/source/href", "Invalid funding source.");
}

#[tokio::test]
async fn a_suspended_sender_is_restricted() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.verified_bank(&customer, "Checking").await;
    app.dwolla.update_customer(&customer, &CustomerUpdate::suspend()).await.unwrap();
    let error = app.send(&bank, &app.account_balance().await, 100).await.unwrap_err();
    assert_field_error(&error, "/_links/source/href", "Sender restricted.");
}

#[tokio::test]
async fn a_transfer_to_the_account_url_lands_in_its_balance() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.verified_bank(&customer, "Checking").await;
    let account = app.dwolla.account_id().await.unwrap();
    let mut request = TransferRequest::between(&bank, "unused", cents(100));
    request.destination = TransferDestination::Account(account);
    let id = app.dwolla.create_transfer(&request, &key()).await.unwrap();
    let transfer = app.dwolla.transfer(&id).await.unwrap();
    let lands_in = transfer.links["destination-funding-source"].id().unwrap().to_owned();
    assert_eq!(lands_in, app.account_balance().await);
}

#[tokio::test]
async fn a_customers_transfers_are_listed_newest_first() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.verified_bank(&customer, "Checking").await;
    let account = app.account_balance().await;
    let first = app.send(&bank, &account, 100).await.unwrap();
    let second = app.send(&bank, &account, 200).await.unwrap();
    app.unverified().await;
    let page = app.dwolla.customer_transfers(&customer, PageQuery::default()).await.unwrap();
    let ids: Vec<&str> = page.items.iter().map(|t| t.id.as_str()).collect();
    assert_eq!((page.total, ids), (2, vec![second.as_str(), first.as_str()]));
}

#[tokio::test]
async fn a_pending_transfer_is_cancelled_once() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.verified_bank(&customer, "Checking").await;
    let id = app.send(&bank, &app.account_balance().await, 100).await.unwrap();
    let cancelled = app.dwolla.cancel_transfer(&id).await.unwrap();
    assert_eq!(cancelled.status, TransferStatus::Cancelled);
    let error = app.dwolla.cancel_transfer(&id).await.unwrap_err();
    assert_field_error(&error, "/status", "Status not allowed.");
    assert_eq!(app.dwolla.simulate_processing().await.unwrap(), 0);
}

// ---------------------------------------------------------------------------
// Idempotency

#[tokio::test]
async fn the_same_idempotency_key_replays_the_first_transfer() {
    let app = TestApp::start().await;
    let verified = app.customer(personal("Ida")).await;
    let destination = app.customer_balance(&verified).await;
    let account = app.account_balance().await;
    let before = app.balance_of(&account).await;
    let request = TransferRequest::between(&account, &destination, cents(300));
    let once = key();
    let first = app.dwolla.create_transfer(&request, &once).await.unwrap();
    let second = app.dwolla.create_transfer(&request, &once).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(app.balance_of(&account).await, before.checked_sub(cents(300)).unwrap());
    let other = app.dwolla.create_transfer(&request, &key()).await.unwrap();
    assert_ne!(other, first);
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_first_customer() {
    let app = TestApp::start().await;
    let once = key();
    let body = NewCustomer::unverified("Idem", "Potent", &unique_email("idem"));
    let first = app.dwolla.create_customer(&body, &once).await.unwrap();
    assert_eq!(app.dwolla.create_customer(&body, &once).await.unwrap(), first);
    let page = app.dwolla.search_customers(&CustomerQuery::default()).await.unwrap();
    assert_eq!(page.total, 1);
}

#[tokio::test]
async fn a_request_refused_by_an_outage_is_not_remembered_under_its_key() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.verified_bank(&customer, "Checking").await;
    let request = TransferRequest::between(&bank, &app.account_balance().await, cents(100));
    let once = key();
    app.sim.set_faults(Faults::outage(503));
    let error = app.dwolla.create_transfer(&request, &once).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    app.sim.set_faults(Faults::default());
    let first = app.dwolla.create_transfer(&request, &once).await.unwrap();
    assert_eq!(app.dwolla.create_transfer(&request, &once).await.unwrap(), first);
    assert_eq!(app.dwolla.simulate_processing().await.unwrap(), 1, "exactly one transfer exists");
}

// ---------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn fault_knobs_set_over_http_produce_retryable_errors() {
    let app = TestApp::start().await;
    app.dwolla.root().await.unwrap();
    let http = reqwest::Client::new();
    let faults_url = app.sim.base_url().join("__sim/faults").unwrap();
    let set = |body: Value| http.post(faults_url.clone()).json(&body).send();

    assert!(set(json!({"outage": 500})).await.unwrap().status().is_success());
    let error = app.dwolla.root().await.unwrap_err();
    assert!(matches!(error, DwollaError::Retryable { status: Some(500), .. }), "{error:?}");

    assert_eq!(error.failure(), ProviderFailure::Transient { retry_after: None });

    // A 429 keeps Dwolla's `Retry-After`, on the token endpoint and the API alike.
    set(json!({"rate_limit_rate": 1.0})).await.unwrap();
    let error = app.dwolla.root().await.unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(error.failure(), ProviderFailure::RateLimited { retry_after: Some(Duration::from_secs(1)) });
    let fresh = client_for(&app.sim, SANDBOX_DWOLLA_SECRET, Duration::from_secs(5));
    let error = fresh.root().await.unwrap_err();
    assert_eq!(error.failure(), ProviderFailure::RateLimited { retry_after: Some(Duration::from_secs(1)) });

    set(json!({"latency_ms": 400})).await.unwrap();
    let impatient = client_for(&app.sim, SANDBOX_DWOLLA_SECRET, Duration::from_millis(100));
    let error = impatient.root().await.unwrap_err();
    assert!(matches!(error, DwollaError::Retryable { status: None, .. }), "{error:?}");

    set(json!({})).await.unwrap();
    app.dwolla.root().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_dwolla_is_retryable() {
    let app = TestApp::start().await;
    let url = app.sim.base_url();
    app.sim.shutdown().await.unwrap();
    let client = DwollaClient::new(DwollaConfig::new(url, SANDBOX_DWOLLA_KEY, SANDBOX_DWOLLA_SECRET)).unwrap();
    let error = client.root().await.unwrap_err();
    assert!(matches!(error, DwollaError::Retryable { status: None, .. }), "{error:?}");
}

// ---------------------------------------------------------------------------
// Webhooks and events

/// A subscriber that records deliveries and refuses the first `refusals`.
struct Subscriber {
    url: String,
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn subscriber(refusals: u64) -> Subscriber {
    let received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (sink, refused) = (sink.clone(), refused.clone());
            async move {
                sink.lock().unwrap().push((headers, body));
                if refused.fetch_add(1, Ordering::Relaxed) < refusals {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Subscriber { url, received }
}

impl Subscriber {
    async fn wait_for(&self, count: usize) -> Vec<(HeaderMap, Bytes)> {
        for _ in 0..200 {
            let received = self.received.lock().unwrap().clone();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {count} deliveries, got {}", self.received.lock().unwrap().len());
    }
}

#[tokio::test]
async fn webhooks_are_signed_so_the_verifier_accepts_them_and_rejects_tampering() {
    let app = TestApp::start().await;
    let hooks = subscriber(0).await;
    let secret = SecretString::from("webhook-secret");
    app.dwolla.create_webhook_subscription(&hooks.url, &secret, &key()).await.unwrap();
    let customer = app.unverified().await;

    let (headers, body) = hooks.wait_for(1).await.remove(0);
    assert_eq!(headers[TOPIC_HEADER], "customer_created");
    assert_eq!(headers["user-agent"], "dwolla-webhooks/1.0");
    let signature = headers[SIGNATURE_HEADER].to_str().unwrap();
    let verifier = WebhookVerifier::new(secret);
    let event = verifier.verify(&body, Some(signature)).unwrap();
    assert_eq!((event.topic.as_str(), event.resource_id.as_str()), ("customer_created", customer.as_str()));
    assert!(event.timestamp.is_some());

    let mut tampered = body.to_vec();
    tampered[body.len() / 2] ^= 1;
    assert_eq!(verifier.verify(&tampered, Some(signature)).unwrap_err(), WebhookError::BadSignature);
    let stranger = WebhookVerifier::new("another-secret");
    assert_eq!(stranger.verify(&body, Some(signature)).unwrap_err(), WebhookError::BadSignature);
    assert_eq!(verifier.verify(&body, None).unwrap_err(), WebhookError::MissingSignature);
}

#[tokio::test]
async fn a_refused_webhook_is_delivered_again_on_the_retry_schedule() {
    let retries = vec![Duration::from_millis(20); 3];
    let app = TestApp::start_with(DwollaSimConfig { webhook_retries: retries, ..DwollaSimConfig::default() }).await;
    let hooks = subscriber(2).await;
    app.dwolla.create_webhook_subscription(&hooks.url, &SecretString::from("s"), &key()).await.unwrap();
    app.unverified().await;
    let deliveries = hooks.wait_for(3).await;
    let ids: Vec<String> = deliveries
        .iter()
        .map(|(_, body)| serde_json::from_slice::<Value>(body).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hooks.received.lock().unwrap().len(), 3, "a delivered webhook is not sent again");
    assert_eq!(app.sim.handle().webhook_attempts(), 3);
}

#[tokio::test]
async fn a_paused_subscription_gets_no_deliveries_until_resumed() {
    let app = TestApp::start().await;
    let hooks = subscriber(0).await;
    let id = app.dwolla.create_webhook_subscription(&hooks.url, &SecretString::from("s"), &key()).await.unwrap();
    assert!(app.dwolla.pause_webhook_subscription(&id, true).await.unwrap().paused);
    app.unverified().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(hooks.received.lock().unwrap().is_empty());
    assert!(!app.dwolla.pause_webhook_subscription(&id, false).await.unwrap().paused);
    app.unverified().await;
    hooks.wait_for(1).await;
}

#[tokio::test]
async fn webhook_subscriptions_are_listed_and_deleted() {
    let app = TestApp::start().await;
    let id = app
        .dwolla
        .create_webhook_subscription("https://donkies.example/v1/dwolla/webhooks", &SecretString::from("s"), &key())
        .await
        .unwrap();
    let listed = app.dwolla.webhook_subscriptions().await.unwrap();
    assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert!(!listed[0].paused);
    let deleted = app.dwolla.delete_webhook_subscription(&id).await.unwrap();
    assert_eq!(deleted.id, id);
    assert!(app.dwolla.webhook_subscriptions().await.unwrap().is_empty());
    let error = app.dwolla.delete_webhook_subscription(&id).await.unwrap_err();
    assert!(matches!(error, DwollaError::NotFound { .. }));
    let error =
        app.dwolla.create_webhook_subscription("not a url", &SecretString::from("s"), &key()).await.unwrap_err();
    assert!(error.has_error_at("/url"), "{error:?}");
}

#[tokio::test]
async fn events_are_listed_newest_first_and_read_by_id() {
    let app = TestApp::start().await;
    let customer = app.unverified().await;
    let bank = app.bank(&customer, "Checking").await;
    let page = app.dwolla.events(PageQuery::default()).await.unwrap();
    let topics: Vec<&str> = page.items.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(topics, ["customer_funding_source_added", "customer_created"]);
    assert_eq!(page.items[0].resource_id, bank);
    let event = app.dwolla.event(&page.items[1].id).await.unwrap();
    assert_eq!(event.resource_id, customer);
    assert!(event.created.is_some());
    assert!(event.links["customer"].href.ends_with(&customer));
    let second = app.dwolla.events(PageQuery { limit: Some(1), offset: Some(1) }).await.unwrap();
    assert_eq!((second.total, second.items[0].id.as_str()), (2, event.id.as_str()));
}
