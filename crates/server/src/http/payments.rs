//! Payments: the user's Dwolla customer, funding sources (micro-deposits and IAV), the round-up
//! source, and Dwolla's webhooks.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use donkies_domain::{BankAccountType, Cents, CustomerKind, DateOfBirth, Phone, PostalCode, Ssn, UsState};
use donkies_dwolla::wire::SIGNATURE_HEADER;
use donkies_dwolla::{WebhookError, WebhookVerifier};
use donkies_store::now;
use donkies_store::payments::{Customer, FundingSource};

use super::AppState;
use super::accounts::{AccountView, account_views};
use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, IdPath, TextPath, parse_id};
use super::input::{Check, Field, RequestBody, Valid};
use super::members::datetime;
use super::page::Page;
use crate::services::ServiceError;
use crate::services::payments::{BankRequest, CustomerRequest, PersonalProfile};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_customer, create_customer))
        .routes(routes!(list_funding_sources, create_funding_source))
        .routes(routes!(verify_funding_source))
        .routes(routes!(get_iav_token))
        .routes(routes!(create_funding_source_by_iav))
        .routes(routes!(set_funding_source))
        .routes(routes!(dwolla_webhook))
}

/// The user's customer at Dwolla.
#[derive(Serialize, ToSchema)]
pub struct CustomerView {
    id: i64,
    /// unverified, receive-only or personal.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Null until created at Dwolla.
    dwolla_id: Option<String>,
    /// Dwolla's status: unverified, retry, document, verified, suspended, deactivated (null
    /// until created there).
    status: Option<String>,
    created_at: Option<String>,
    address1: Option<String>,
    address2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    postal_code: Option<String>,
    date_of_birth: Option<String>,
    /// Masked: `***-**-1234`.
    ssn: Option<String>,
    phone: Option<String>,
}

impl From<Customer> for CustomerView {
    fn from(c: Customer) -> Self {
        CustomerView {
            id: c.id,
            kind: c.kind.as_str(),
            dwolla_id: c.dwolla_id,
            status: c.status.map(|s| s.as_str().to_owned()),
            created_at: datetime(Some(c.created_at)),
            address1: c.address1,
            address2: c.address2,
            city: c.city,
            state: c.state,
            postal_code: c.postal_code,
            date_of_birth: c.date_of_birth.map(|d| d.to_string()),
            ssn: c.ssn_last4.map(|l| format!("***-**-{l}")),
            phone: c.phone,
        }
    }
}

/// The User's `dwolla_customer`.
#[derive(Serialize, ToSchema)]
pub struct UserCustomer {
    id: i64,
    #[serde(rename = "type")]
    kind: &'static str,
    /// The customer's type as Dwolla names it.
    dwolla_type: &'static str,
    dwolla_id: Option<String>,
    status: Option<String>,
    created_at: Option<String>,
}

impl From<&Customer> for UserCustomer {
    fn from(c: &Customer) -> Self {
        UserCustomer {
            id: c.id,
            kind: c.kind.as_str(),
            dwolla_type: c.kind.as_str(),
            dwolla_id: c.dwolla_id.clone(),
            status: c.status.as_ref().map(|s| s.as_str().to_owned()),
            created_at: datetime(Some(c.created_at)),
        }
    }
}

/// The user's Dwolla customer.
#[utoipa::path(get, path = "/v1/customer", tag = "payments", security(("token" = [])),
    responses((status = 200, body = CustomerView), (status = 404)))]
async fn get_customer(State(state): State<AppState>, auth: AuthUser) -> ApiResult<axum::Json<CustomerView>> {
    let customer = state.services.payments.customer(auth.user.id).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(customer.into()))
}

#[derive(Default, Deserialize, ToSchema)]
pub struct CustomerRequestBody {
    #[serde(default, rename = "type")]
    #[schema(value_type = String, required = true, pattern = "^(unverified|receive-only|personal)$")]
    kind: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 50)]
    address1: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 50)]
    address2: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    city: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^([A-Z]{2})?$")]
    state: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^([0-9]{5})?$")]
    postal_code: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    date_of_birth: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[0-9]{3}-[0-9]{2}-[0-9]{4}$")]
    ssn: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[0-9]{10}$")]
    phone: Field<String>,
}

impl RequestBody for CustomerRequestBody {
    type Parsed = CustomerRequest;
    fn parse(self, c: &mut Check) -> Option<CustomerRequest> {
        let kind = c.text("type", self.kind);
        let kind = c.parse("type", kind, |k| {
            CustomerKind::parse(k.trim()).ok_or("Choose unverified, receive-only or personal.")
        })?;
        if kind != CustomerKind::Personal {
            return Some(CustomerRequest { kind, profile: None });
        }
        let today = now().date_naive();
        let address1 = c.text("address1", self.address1);
        let address2 = c.optional("address2", self.address2).filter(|a| !a.trim().is_empty());
        let city = c.text("city", self.city);
        let us_state = c.text("state", self.state);
        let us_state = c.parse("state", us_state, |s| UsState::parse(s.trim()));
        let postal = c.text("postal_code", self.postal_code);
        let postal = c.parse("postal_code", postal, |s| PostalCode::parse(s.trim()));
        let birth = c.text("date_of_birth", self.date_of_birth);
        let birth = c.parse("date_of_birth", birth, |s| DateOfBirth::parse(s.trim(), today));
        let ssn = c.text("ssn", self.ssn);
        let ssn = c.parse("ssn", ssn, |s| Ssn::parse(s.trim()));
        let phone = c.optional("phone", self.phone);
        let phone = c.parse("phone", phone, |s| Phone::parse(s.trim()));
        let profile = PersonalProfile {
            address1: address1?.trim().to_owned(),
            address2,
            city: city?.trim().to_owned(),
            state: us_state?.as_str().to_owned(),
            postal_code: postal?.as_str().to_owned(),
            date_of_birth: birth?.date(),
            ssn: ssn?.digits().to_owned(),
            phone: phone.map(|p| p.as_str().to_owned()),
        };
        Some(CustomerRequest { kind, profile: Some(profile) })
    }
}

/// Create the user's customer of a type (a personal one appears by itself once the profile
/// is complete); it is created at Dwolla in the background.
#[utoipa::path(post, path = "/v1/customer", tag = "payments", security(("token" = [])), request_body = CustomerRequestBody,
    responses((status = 201, body = CustomerView), (status = 400, description = "field errors, or a customer exists")))]
async fn create_customer(
    State(state): State<AppState>,
    auth: AuthUser,
    Valid(request): Valid<CustomerRequestBody>,
) -> ApiResult<(StatusCode, axum::Json<CustomerView>)> {
    let customer = state.services.payments.create_customer(&auth.user, request).await?;
    Ok((StatusCode::CREATED, axum::Json(customer.into())))
}

/// A bank account at Dwolla that round-ups can be collected from.
#[derive(Serialize, ToSchema)]
pub struct FundingSourceView {
    id: i64,
    account: AccountView,
    /// Null until created at Dwolla.
    dwolla_id: Option<String>,
    /// Last four digits (null for a bank added by IAV).
    account_number: Option<String>,
    routing_number: Option<String>,
    /// unverified or verified.
    status: &'static str,
    /// checking or savings.
    #[serde(rename = "type")]
    kind: &'static str,
    /// bank or balance.
    typeb: &'static str,
    name: String,
    /// micro-deposits or iav.
    verification_type: &'static str,
    /// Micro-deposits: pending, processed, failed or max_attempts (null before they start).
    md_status: Option<&'static str>,
    created_at: Option<String>,
    is_removed: bool,
}

async fn funding_source_views(
    state: &AppState,
    user_id: i64,
    list: Vec<FundingSource>,
) -> ApiResult<Vec<FundingSourceView>> {
    let accounts = state.services.accounts.accounts(user_id).await?;
    let wanted: Vec<_> = accounts.into_iter().filter(|a| list.iter().any(|f| f.account_id == a.id)).collect();
    let ids: Vec<i64> = wanted.iter().map(|a| a.id).collect();
    let views = account_views(state, wanted).await?;
    let mut by_id: std::collections::HashMap<i64, AccountView> = ids.into_iter().zip(views).collect();
    let mut out = Vec::with_capacity(list.len());
    for f in list {
        // An account the user removed takes its funding source out of view.
        let Some(account) = by_id.remove(&f.account_id) else { continue };
        out.push(FundingSourceView {
            id: f.id,
            account,
            dwolla_id: f.dwolla_id,
            account_number: f.account_number_last4,
            routing_number: f.routing_number,
            status: f.status.as_str(),
            kind: f.bank_account_type.as_str(),
            typeb: f.source_type.as_str(),
            name: f.name,
            verification_type: f.verification_type.as_str(),
            md_status: f.md_status.as_ref().map(|s| s.as_str()),
            created_at: datetime(Some(f.created_at)),
            is_removed: f.is_removed,
        });
    }
    Ok(out)
}

async fn one_view(state: &AppState, user_id: i64, source: FundingSource) -> ApiResult<FundingSourceView> {
    funding_source_views(state, user_id, vec![source]).await?.pop().ok_or(ApiError::NotFound)
}

/// The user's funding sources.
#[utoipa::path(get, path = "/v1/funding_sources", tag = "payments", security(("token" = [])),
    responses((status = 200, body = [FundingSourceView])))]
async fn list_funding_sources(
    State(state): State<AppState>,
    auth: AuthUser,
    page: Page,
) -> ApiResult<axum::response::Response> {
    let list = state.services.payments.funding_sources(auth.user.id).await?;
    Ok(page.respond(funding_source_views(&state, auth.user.id, list).await?))
}

impl Check {
    /// A required account id.
    fn account_id(&mut self, field: Field<String>) -> Option<i64> {
        let raw = self.text("account_id", field);
        self.parse("account_id", raw, |a| parse_id(a.trim()).ok_or("Choose one of your accounts."))
    }
}

#[derive(Default, Deserialize, ToSchema)]
pub struct FundingSourceRequest {
    /// The debit account it is.
    #[serde(default)]
    #[schema(value_type = i64, required = true)]
    account_id: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, pattern = "^[0-9]{4,17}$", required = true)]
    account_number: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, pattern = "^[0-9]{9}$", required = true)]
    routing_number: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, max_length = 50, required = true)]
    name: Field<String>,
    #[serde(default, rename = "type")]
    #[schema(value_type = String, pattern = "^(checking|savings)$", required = true)]
    kind: Field<String>,
}

impl RequestBody for FundingSourceRequest {
    type Parsed = BankRequest;
    fn parse(self, c: &mut Check) -> Option<BankRequest> {
        let account_id = c.account_id(self.account_id);
        let number = c.text("account_number", self.account_number).map(|n| n.replace([' ', '-'], ""));
        let number = c.parse("account_number", number, |n| {
            if (4..=17).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) {
                Ok(n)
            } else {
                Err("Enter a valid account number (4 to 17 digits).")
            }
        });
        let routing = c.text("routing_number", self.routing_number).map(|r| r.trim().to_owned());
        let routing = c.parse("routing_number", routing, |r| {
            if donkies_domain::valid_routing_number(&r) { Ok(r) } else { Err("Enter a valid 9-digit routing number.") }
        });
        let name = c.text("name", self.name).map(|n| n.trim().to_owned());
        let name = c.parse("name", name, |n| {
            if n.chars().count() <= 50 { Ok(n) } else { Err("Ensure this field has no more than 50 characters.") }
        });
        let kind = c.text("type", self.kind);
        let kind = c.parse("type", kind, |k| BankAccountType::parse(k.trim()).ok_or("Choose checking or savings."));
        Some(BankRequest {
            account_id: account_id?,
            account_number: number?,
            routing_number: routing?,
            name: name?,
            kind: kind?,
        })
    }
}

/// Add a bank by its numbers; two micro-deposits are sent to it in the background.
#[utoipa::path(post, path = "/v1/funding_sources", tag = "payments", security(("token" = [])), request_body = FundingSourceRequest,
    responses((status = 201, body = FundingSourceView), (status = 400, description = "field errors, or no customer yet")))]
async fn create_funding_source(
    State(state): State<AppState>,
    auth: AuthUser,
    Valid(bank): Valid<FundingSourceRequest>,
) -> ApiResult<(StatusCode, axum::Json<FundingSourceView>)> {
    let source = state.services.payments.add_bank(auth.user.id, bank).await?;
    Ok((StatusCode::CREATED, axum::Json(one_view(&state, auth.user.id, source).await?)))
}

#[derive(Default, Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The first micro-deposit, e.g. `"0.03"`.
    #[serde(default)]
    #[schema(value_type = String, example = "0.03", required = true)]
    amount1: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, example = "0.09", required = true)]
    amount2: Field<String>,
}

impl RequestBody for VerifyRequest {
    type Parsed = (Cents, Cents);
    fn parse(self, c: &mut Check) -> Option<(Cents, Cents)> {
        let a1 = c.text("amount1", self.amount1);
        let a1 = c.parse("amount1", a1, |a| Cents::parse(a.trim()));
        let a2 = c.text("amount2", self.amount2);
        let a2 = c.parse("amount2", a2, |a| Cents::parse(a.trim()));
        Some((a1?, a2?))
    }
}

/// Verify a bank with the amounts of its two micro-deposits (three attempts).
#[utoipa::path(post, path = "/v1/funding_sources/{id}/verify", tag = "payments", security(("token" = [])),
    params(("id" = i64, Path)), request_body = VerifyRequest,
    responses((status = 200, body = FundingSourceView), (status = 400, description = "wrong amounts, or out of attempts"), (status = 404)))]
async fn verify_funding_source(
    State(state): State<AppState>,
    auth: AuthUser,
    IdPath(id): IdPath,
    Valid((amount1, amount2)): Valid<VerifyRequest>,
) -> ApiResult<axum::Json<FundingSourceView>> {
    let source = state.services.payments.verify_micro_deposits(auth.user.id, id, amount1, amount2).await?;
    Ok(axum::Json(one_view(&state, auth.user.id, source).await?))
}

#[derive(Serialize, ToSchema)]
pub struct IavToken {
    /// Hand it to dwolla.js `dwolla.iav.start`.
    token: String,
}

/// A single-use token for Dwolla's Instant Account Verification in the browser.
#[utoipa::path(post, path = "/v1/get_iav_token/{dwolla_customer_id}", tag = "payments", security(("token" = [])),
    params(("dwolla_customer_id" = String, Path, description = "the customer's dwolla_id")),
    responses((status = 200, body = IavToken), (status = 400, description = "`{\"message\"}`: the customer is not verified"), (status = 404)))]
async fn get_iav_token(
    State(state): State<AppState>,
    auth: AuthUser,
    TextPath(dwolla_customer_id): TextPath,
) -> ApiResult<axum::Json<IavToken>> {
    match state.services.payments.iav_token(auth.user.id, &dwolla_customer_id).await {
        Ok(token) => Ok(axum::Json(IavToken { token })),
        Err(ServiceError::Invalid(message)) => Err(ApiError::Message(message)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Default, Deserialize, ToSchema)]
pub struct IavRequest {
    #[serde(default)]
    #[schema(value_type = i64, required = true)]
    account_id: Field<String>,
    /// The funding source id that Dwolla's IAV handed the browser.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    dwolla_id: Field<String>,
}

impl RequestBody for IavRequest {
    type Parsed = (i64, String);
    fn parse(self, c: &mut Check) -> Option<(i64, String)> {
        let account_id = c.account_id(self.account_id);
        let dwolla_id = c.text("dwolla_id", self.dwolla_id);
        Some((account_id?, dwolla_id?.trim().to_owned()))
    }
}

/// Link the bank the user just verified through IAV to one of their debit accounts.
#[utoipa::path(post, path = "/v1/create_funding_source_by_iav", tag = "payments", security(("token" = [])), request_body = IavRequest,
    responses((status = 201, body = FundingSourceView), (status = 400, description = "not this user's funding source, or not a debit account")))]
async fn create_funding_source_by_iav(
    State(state): State<AppState>,
    auth: AuthUser,
    Valid((account_id, dwolla_id)): Valid<IavRequest>,
) -> ApiResult<(StatusCode, axum::Json<FundingSourceView>)> {
    let source = state.services.payments.funding_source_from_iav(auth.user.id, account_id, &dwolla_id).await?;
    Ok((StatusCode::CREATED, axum::Json(one_view(&state, auth.user.id, source).await?)))
}

/// Collect round-ups from this debit account (it needs a verified funding source).
#[utoipa::path(post, path = "/v1/accounts/set_funding_source/{id}", tag = "accounts", security(("token" = [])),
    params(("id" = i64, Path)), responses((status = 201), (status = 400, description = "no verified funding source"), (status = 404)))]
async fn set_funding_source(
    State(state): State<AppState>,
    auth: AuthUser,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    state.services.payments.set_round_up_source(auth.user.id, id).await?;
    Ok(StatusCode::CREATED)
}

/// An event from Dwolla, signed with the webhook secret; a replay changes nothing.
#[utoipa::path(post, path = "/v1/dwolla/webhooks", tag = "payments", request_body(content = Object, description = "a Dwolla event"),
    responses((status = 200), (status = 401, description = "unsigned or badly signed")))]
async fn dwolla_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let verifier = WebhookVerifier::new(state.settings.dwolla.webhook_secret.clone());
    let event = verifier.verify(&body, signature).map_err(|e| {
        tracing::warn!(error = %e, "Dwolla webhook refused");
        match e {
            WebhookError::MissingSignature | WebhookError::BadSignature => ApiError::BadSignature,
            // Signed by Dwolla's secret, so not forged: a body that is not an event is a bad request.
            WebhookError::UnreadableEvent(why) => ApiError::non_field(format!("The body is not a Dwolla event: {why}")),
        }
    })?;
    let fresh = state.services.payments.receive_dwolla_event(&event).await?;
    Ok(axum::Json(serde_json::json!({ "received": event.id, "duplicate": !fresh })))
}
