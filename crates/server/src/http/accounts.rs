//! Accounts, debt shares and transactions of the signed-in user.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use donkies_domain::{Cents, carve_share, roundup};
use donkies_store::accounts::{self, Account};
use donkies_store::members::{self, Member};
use donkies_store::{now, transactions};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Body, Fields};
use super::members::{InstitutionView, MemberView, datetime, member_view};
use super::page::Page;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts))
        .routes(routes!(get_account, delete_account))
        .routes(routes!(set_active))
        .routes(routes!(set_account_number))
        .routes(routes!(edit_share))
        .routes(routes!(list_debt_links, link_debt))
        .routes(routes!(list_transactions))
}

fn money(c: Option<i64>) -> Option<String> {
    c.map(|c| Cents::new(c).to_string())
}

/// An account at a linked institution. Money fields are decimal strings.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    id: String,
    uid: String,
    member: MemberView,
    institution: InstitutionView,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    type_ds: String,
    subtype: Option<String>,
    balance: Option<String>,
    available_balance: Option<String>,
    available_credit: Option<String>,
    credit_limit: Option<String>,
    apr: Option<f64>,
    apy: Option<f64>,
    interest_rate: Option<f64>,
    minimum_balance: Option<String>,
    minimum_payment: Option<String>,
    original_balance: Option<String>,
    payoff_balance: Option<String>,
    last_payment: Option<String>,
    last_payment_at: Option<String>,
    payment_due_at: Option<String>,
    day_payment_is_due: Option<i64>,
    matures_on: Option<String>,
    started_on: Option<String>,
    total_account_value: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    is_closed: bool,
    is_active: bool,
    transfer_share: i64,
    is_funding_source_for_transfer: bool,
    is_dwolla_created: bool,
    /// Last four digits, or null.
    account_number: Option<String>,
}

/// Render accounts, reading each member once.
async fn account_views(state: &AppState, list: Vec<Account>) -> ApiResult<Vec<AccountView>> {
    let mut members_by_id: HashMap<String, Member> = HashMap::new();
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        if !members_by_id.contains_key(&a.member_id) {
            let m = members::get(&state.db, &a.member_id).await?.ok_or(ApiError::NotFound)?;
            members_by_id.insert(a.member_id.clone(), m);
        }
        let m = members_by_id[&a.member_id].clone();
        let institution = m.institution().into();
        out.push(AccountView {
            member: member_view(state, m).await?,
            institution,
            balance: money(a.balance),
            available_balance: money(a.available_balance),
            available_credit: money(a.available_credit),
            credit_limit: money(a.credit_limit),
            minimum_balance: money(a.minimum_balance),
            minimum_payment: money(a.minimum_payment),
            original_balance: money(a.original_balance),
            payoff_balance: money(a.payoff_balance),
            last_payment: money(a.last_payment),
            total_account_value: money(a.total_account_value),
            last_payment_at: datetime(a.last_payment_at),
            payment_due_at: datetime(a.payment_due_at),
            matures_on: a.matures_on.map(|d| d.to_string()),
            started_on: a.started_on.map(|d| d.to_string()),
            created_at: datetime(Some(a.created_at)),
            updated_at: datetime(Some(a.updated_at)),
            id: a.id,
            uid: a.uid,
            name: a.name,
            kind: a.kind,
            type_ds: a.type_ds,
            subtype: a.subtype,
            apr: a.apr,
            apy: a.apy,
            interest_rate: a.interest_rate,
            day_payment_is_due: a.day_payment_is_due,
            is_closed: a.is_closed,
            is_active: a.is_active,
            transfer_share: a.transfer_share,
            is_funding_source_for_transfer: a.is_funding_source_for_transfer,
            is_dwolla_created: a.is_dwolla_created,
            account_number: a.account_number_last4,
        });
    }
    Ok(out)
}

async fn one_account(state: &AppState, user_id: &str, id: &str) -> ApiResult<Account> {
    accounts::get(&state.db, user_id, id).await?.ok_or(ApiError::NotFound)
}

/// The user's accounts, inactive ones included.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", security(("token" = [])), responses((status = 200, body = [AccountView])))]
async fn list_accounts(
    State(state): State<AppState>,
    auth: AuthUser,
    page: Page,
) -> ApiResult<axum::response::Response> {
    let list = accounts::list_for_user(&state.db, &auth.user.id).await?;
    Ok(page.respond(account_views(&state, list).await?))
}

/// One account.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", security(("token" = [])),
    params(("id" = String, Path)), responses((status = 200, body = AccountView), (status = 404)))]
async fn get_account(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AccountView>> {
    let account = one_account(&state, &auth.user.id, &id).await?;
    let mut views = account_views(&state, vec![account]).await?;
    Ok(axum::Json(views.remove(0)))
}

/// Remove an account from the user's view.
#[utoipa::path(delete, path = "/v1/accounts/{id}", tag = "accounts", security(("token" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404)))]
async fn delete_account(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !accounts::hide(&state.db, &auth.user.id, &id, now()).await? {
        return Err(ApiError::NotFound);
    }
    state.banking.rebalance_debt_shares(&auth.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SetActiveRequest {
    is_active: bool,
}

/// Switch an account on or off; each institution keeps at least one active account.
#[utoipa::path(put, path = "/v1/accounts/set_active/{id}", tag = "accounts", security(("token" = [])),
    params(("id" = String, Path)), request_body = SetActiveRequest, responses((status = 204), (status = 400), (status = 404)))]
async fn set_active(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    let account = one_account(&state, &auth.user.id, &id).await?;
    let mut f = Fields::new(body);
    let active = f.optional_bool("is_active");
    if active.is_none() && !f.has_error("is_active") {
        f.error("is_active", "This field is required.");
    }
    f.finish()?;
    let active = active.unwrap_or(true);
    let mut tx = state.db.begin().await?;
    accounts::set_active(&mut tx, &auth.user.id, &account.id, active, now()).await?;
    if !active && accounts::count_active_in_member(&mut tx, &account.member_id).await? == 0 {
        return Err(ApiError::non_field("At least one account at each institution must stay active."));
    }
    if !active && account.transfer_share > 0 {
        accounts::set_shares(&mut tx, &auth.user.id, &[], now()).await?;
    }
    tx.commit().await?;
    if !active && account.transfer_share > 0 {
        // Give the share back to the remaining debt accounts.
        state.banking.rebalance_debt_shares(&auth.user.id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct AccountNumberRequest {
    account_number: String,
}

/// Record the account's number (stored encrypted, shown as its last four digits).
#[utoipa::path(post, path = "/v1/accounts/set_account_number/{id}", tag = "accounts", security(("token" = [])),
    params(("id" = String, Path)), request_body = AccountNumberRequest,
    responses((status = 201), (status = 400, description = "invalid, or already set"), (status = 404)))]
async fn set_account_number(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    let account = one_account(&state, &auth.user.id, &id).await?;
    let mut f = Fields::new(body);
    let number = f.required_str("account_number").map(|n| n.replace([' ', '-'], ""));
    if number.as_ref().is_some_and(|n| !(4..=17).contains(&n.len()) || !n.bytes().all(|b| b.is_ascii_digit())) {
        f.error("account_number", "Enter a valid account number (4 to 17 digits).");
    }
    f.finish()?;
    let number = number.unwrap_or_default();
    let sealed = state.sealer.seal(&number);
    let last4 = &number[number.len() - 4..];
    if !accounts::set_account_number(&state.db, &auth.user.id, &account.id, &sealed, last4, now()).await? {
        return Err(ApiError::non_field("The account number is already set."));
    }
    Ok(StatusCode::CREATED)
}

async fn active_debts(state: &AppState, user_id: &str) -> ApiResult<Vec<Account>> {
    Ok(accounts::list_for_user(&state.db, user_id)
        .await?
        .into_iter()
        .filter(|a| a.type_ds == "debt" && a.is_active)
        .collect())
}

/// Set every active debt account's share of the payouts: `{"id<account id>": percent, …}`.
#[utoipa::path(put, path = "/v1/accounts/edit_share", tag = "accounts", security(("token" = [])),
    request_body(content = Object, description = "`{\"id<account id>\": <int percent>}` for every active debt account, summing to 100"),
    responses((status = 200), (status = 400)))]
async fn edit_share(State(state): State<AppState>, auth: AuthUser, body: Body) -> ApiResult<axum::Json<Value>> {
    let debts = active_debts(&state, &auth.user.id).await?;
    let mut shares: BTreeMap<String, i64> = BTreeMap::new();
    for (key, value) in &body.0 {
        let Some(id) = key.strip_prefix("id") else {
            return Err(ApiError::non_field(format!("Unexpected key \"{key}\"; use \"id<account id>\".")));
        };
        let share = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match share {
            Some(s) if (0..=100).contains(&s) => {
                shares.insert(id.to_owned(), s);
            }
            _ => {
                return Err(ApiError::non_field(format!("The share of \"{key}\" must be an integer from 0 to 100.")));
            }
        }
    }
    let expected: std::collections::BTreeSet<&str> = debts.iter().map(|a| a.id.as_str()).collect();
    let given: std::collections::BTreeSet<&str> = shares.keys().map(String::as_str).collect();
    if expected != given {
        return Err(ApiError::non_field("Give a share for exactly each of your active debt accounts."));
    }
    let values: Vec<i64> = shares.values().copied().collect();
    donkies_domain::validate_shares(&values).map_err(|e| ApiError::non_field(e.to_string()))?;
    let pairs: Vec<(String, i64)> = shares.into_iter().collect();
    let mut tx = state.db.begin().await?;
    accounts::set_shares(&mut tx, &auth.user.id, &pairs, now()).await?;
    tx.commit().await?;
    let out: serde_json::Map<String, Value> =
        pairs.into_iter().map(|(id, s)| (format!("id{id}"), Value::from(s))).collect();
    Ok(axum::Json(Value::Object(out)))
}

/// A debt account and its share of the payouts.
#[derive(Serialize, ToSchema)]
pub struct DebtLink {
    account: AccountView,
    share: i64,
}

async fn debt_links(state: &AppState, user_id: &str) -> ApiResult<Vec<DebtLink>> {
    let debts = active_debts(state, user_id).await?;
    let views = account_views(state, debts).await?;
    Ok(views.into_iter().map(|v| DebtLink { share: v.transfer_share, account: v }).collect())
}

/// The active debt accounts and their shares.
#[utoipa::path(get, path = "/v1/link_debts", tag = "accounts", security(("token" = [])), responses((status = 200, body = [DebtLink])))]
async fn list_debt_links(
    State(state): State<AppState>,
    auth: AuthUser,
    page: Page,
) -> ApiResult<axum::response::Response> {
    Ok(page.respond(debt_links(&state, &auth.user.id).await?))
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct LinkDebtRequest {
    account: String,
    share: i64,
}

/// Give one debt account a share; the others are rescaled so the total stays 100.
#[utoipa::path(post, path = "/v1/link_debts", tag = "accounts", security(("token" = [])), request_body = LinkDebtRequest,
    responses((status = 201, body = [DebtLink]), (status = 400)))]
async fn link_debt(
    State(state): State<AppState>,
    auth: AuthUser,
    body: Body,
) -> ApiResult<(StatusCode, axum::Json<Vec<DebtLink>>)> {
    let mut f = Fields::new(body);
    let account = f.required_str("account");
    let share = f.optional_int("share");
    if share.is_none() && !f.has_error("share") {
        f.error("share", "This field is required.");
    }
    if share.is_some_and(|s| !(0..=100).contains(&s)) {
        f.error("share", "Ensure this value is an integer from 0 to 100.");
    }
    f.finish()?;
    let (Some(account), Some(share)) = (account, share) else {
        return Err(ApiError::non_field("Invalid data."));
    };
    let debts = active_debts(&state, &auth.user.id).await?;
    let Some(index) = debts.iter().position(|a| a.id == account.trim()) else {
        return Err(ApiError::field("account", "Choose one of your active debt accounts."));
    };
    let current: Vec<u32> = debts.iter().map(|a| a.transfer_share.clamp(0, 100) as u32).collect();
    let carved = carve_share(&current, index, share as u32);
    let pairs: Vec<(String, i64)> = debts.iter().map(|a| a.id.clone()).zip(carved.into_iter().map(i64::from)).collect();
    let mut tx = state.db.begin().await?;
    accounts::set_shares(&mut tx, &auth.user.id, &pairs, now()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(debt_links(&state, &auth.user.id).await?)))
}

/// A transaction. `roundup` is the spare change it gives.
#[derive(Serialize, ToSchema)]
pub struct TransactionView {
    account: String,
    account_id: String,
    uid: String,
    amount: String,
    roundup: String,
    category: Option<String>,
    top_level_category: Option<String>,
    description: Option<String>,
    original_description: Option<String>,
    memo: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    status: Option<String>,
    date: String,
    transacted_at: Option<String>,
    posted_at: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    check_number: Option<i64>,
    merchant_category_code: Option<i64>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    is_bill_pay: bool,
    is_direct_deposit: bool,
    is_expense: bool,
    is_fee: bool,
    is_income: bool,
    is_overdraft_fee: bool,
    is_payroll_advance: bool,
}

#[derive(Deserialize)]
struct TransactionQuery {
    account_id: Option<String>,
}

/// The user's transactions, newest first, optionally of one account.
#[utoipa::path(get, path = "/v1/transactions", tag = "accounts", security(("token" = [])),
    params(("account_id" = Option<String>, Query)), responses((status = 200, body = [TransactionView])))]
async fn list_transactions(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<TransactionQuery>,
    page: Page,
) -> ApiResult<axum::response::Response> {
    let even = auth.user.is_even_roundup;
    let account = q.account_id.as_deref().filter(|a| !a.is_empty());
    let limit = page.limit.map(|l| l as i64);
    let list = transactions::list_for_user(&state.db, &auth.user.id, account, limit, page.offset as i64).await?;
    let count = match page.limit {
        Some(_) => transactions::count_visible(&state.db, &auth.user.id, account).await? as usize,
        None => list.len(),
    };
    let views = list
        .into_iter()
        .map(|t| {
            let spare = if t.kind == "DEBIT" && t.account_type_ds == "debit" {
                roundup(Cents::new(t.amount), even)
            } else {
                Cents::ZERO
            };
            TransactionView {
                account: t.account_name,
                account_id: t.account_id,
                uid: t.uid,
                amount: Cents::new(t.amount).to_string(),
                roundup: spare.to_string(),
                category: t.category,
                top_level_category: t.top_level_category,
                description: t.description,
                original_description: t.original_description,
                memo: t.memo,
                kind: t.kind,
                status: t.status,
                date: t.date.to_string(),
                transacted_at: datetime(t.transacted_at),
                posted_at: datetime(t.posted_at),
                created_at: datetime(Some(t.created_at)),
                updated_at: datetime(Some(t.updated_at)),
                check_number: t.check_number,
                merchant_category_code: t.merchant_category_code,
                latitude: t.latitude,
                longitude: t.longitude,
                is_bill_pay: t.is_bill_pay,
                is_direct_deposit: t.is_direct_deposit,
                is_expense: t.is_expense,
                is_fee: t.is_fee,
                is_income: t.is_income,
                is_overdraft_fee: t.is_overdraft_fee,
                is_payroll_advance: t.is_payroll_advance,
            }
        })
        .collect();
    Ok(page.respond_counted(count, views))
}
