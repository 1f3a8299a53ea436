//! Accounts, debt shares and transactions of the signed-in user.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use donkies_domain::{Cents, DebtSharesError, RoundUpRules, Share};
use donkies_store::accounts::Account;
use donkies_store::transactions::Transaction;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Body, IdPath, QueryParams, parse_id};
use super::input::{Check, Field, RequestBody, Valid};
use super::members::{DATETIME, InstitutionView, MemberView, datetime, member_view};
use super::page::Page;
use super::rendered::{Loaded, Rendered};

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

fn money(c: Option<Cents>) -> Option<String> {
    c.map(|c| c.to_string())
}

/// An account at a linked institution. Money fields are decimal strings.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    id: i64,
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
pub(super) async fn account_views(state: &AppState, list: Vec<Account>) -> ApiResult<Vec<AccountView>> {
    let members_by_id = state.services.accounts.members_of(&list).await?;
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        let m = members_by_id.get(&a.member_id).cloned().ok_or(ApiError::NotFound)?;
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
            type_ds: a.type_ds.as_str().to_owned(),
            subtype: a.subtype,
            apr: a.apr,
            apy: a.apy,
            interest_rate: a.interest_rate,
            day_payment_is_due: a.day_payment_is_due,
            is_closed: a.is_closed,
            is_active: a.is_active,
            transfer_share: i64::from(a.transfer_share.get()),
            is_funding_source_for_transfer: a.is_funding_source_for_transfer,
            is_dwolla_created: a.is_dwolla_created,
            account_number: a.account_number_last4,
        });
    }
    Ok(out)
}

/// The user's accounts, inactive ones included.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", security(("token" = [])), responses((status = 200, body = [AccountView])))]
async fn list_accounts(
    State(state): State<AppState>,
    auth: AuthUser,
    page: Page,
    headers: HeaderMap,
) -> ApiResult<axum::response::Response> {
    let user_id = auth.user.id;
    let key = format!("accounts/{}", page.cache_key());
    state
        .kept(user_id, key, &headers, move |state| async move {
            let list = state.services.accounts.accounts(user_id).await?;
            page.render(account_views(&state, list).await?)
        })
        .await
}

/// One account.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", security(("token" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = AccountView), (status = 404)))]
async fn get_account(
    State(state): State<AppState>,
    auth: AuthUser,
    IdPath(id): IdPath,
) -> ApiResult<axum::Json<AccountView>> {
    let account = state.services.accounts.account(auth.user.id, id).await?;
    let mut views = account_views(&state, vec![account]).await?;
    Ok(axum::Json(views.remove(0)))
}

/// Remove an account from the user's view.
#[utoipa::path(delete, path = "/v1/accounts/{id}", tag = "accounts", security(("token" = [])),
    params(("id" = i64, Path)), responses((status = 204), (status = 404)))]
async fn delete_account(State(state): State<AppState>, auth: AuthUser, IdPath(id): IdPath) -> ApiResult<StatusCode> {
    state.services.accounts.hide_account(auth.user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Default, Deserialize, ToSchema)]
pub struct SetActiveRequest {
    #[schema(value_type = bool, required = true)]
    #[serde(default)]
    is_active: Field<bool>,
}

impl RequestBody for SetActiveRequest {
    type Parsed = bool;
    fn parse(self, c: &mut Check) -> Option<bool> {
        c.required("is_active", self.is_active)
    }
}

/// Switch an account on or off; each institution keeps at least one active account.
#[utoipa::path(put, path = "/v1/accounts/set_active/{id}", tag = "accounts", security(("token" = [])),
    params(("id" = i64, Path)), request_body = SetActiveRequest, responses((status = 204), (status = 400), (status = 404)))]
async fn set_active(
    State(state): State<AppState>,
    auth: AuthUser,
    IdPath(id): IdPath,
    Valid(active): Valid<SetActiveRequest>,
) -> ApiResult<StatusCode> {
    state.services.accounts.set_account_active(auth.user.id, id, active).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Default, Deserialize, ToSchema)]
pub struct AccountNumberRequest {
    /// 4 to 17 digits (spaces and dashes are ignored).
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    account_number: Field<String>,
}

impl RequestBody for AccountNumberRequest {
    type Parsed = String;
    fn parse(self, c: &mut Check) -> Option<String> {
        let number = c.text("account_number", self.account_number)?.replace([' ', '-'], "");
        if !(4..=17).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
            c.error("account_number", "Enter a valid account number (4 to 17 digits).");
            return None;
        }
        Some(number)
    }
}

/// Record the account's number (stored encrypted, shown as its last four digits).
#[utoipa::path(post, path = "/v1/accounts/set_account_number/{id}", tag = "accounts", security(("token" = [])),
    params(("id" = i64, Path)), request_body = AccountNumberRequest,
    responses((status = 201), (status = 400, description = "invalid, or already set"), (status = 404)))]
async fn set_account_number(
    State(state): State<AppState>,
    auth: AuthUser,
    IdPath(id): IdPath,
    Valid(number): Valid<AccountNumberRequest>,
) -> ApiResult<StatusCode> {
    state.services.accounts.set_account_number(auth.user.id, id, &number).await?;
    Ok(StatusCode::CREATED)
}

/// Set every active debt account's share of the payouts: `{"id<account id>": percent, …}`.
#[utoipa::path(put, path = "/v1/accounts/edit_share", tag = "accounts", security(("token" = [])),
    request_body(content = Object, description = "`{\"id<account id>\": <int percent>}` for every active debt account, summing to 100"),
    responses((status = 200), (status = 400)))]
async fn edit_share(State(state): State<AppState>, auth: AuthUser, body: Body) -> ApiResult<axum::Json<Value>> {
    let mut shares: BTreeMap<i64, i64> = BTreeMap::new();
    for (key, value) in &body.0 {
        let Some(id) = key.strip_prefix("id") else {
            return Err(ApiError::non_field(format!("Unexpected key \"{key}\"; use \"id<account id>\".")));
        };
        let Some(id) = parse_id(id) else {
            return Err(ApiError::non_field(DebtSharesError::NotTheActiveDebtAccounts.to_string()));
        };
        let share = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let share =
            share.ok_or_else(|| ApiError::non_field(DebtSharesError::OutOfRange { account_id: id }.to_string()))?;
        shares.insert(id, share);
    }
    let shares = state.services.accounts.edit_shares(auth.user.id, shares).await?;
    let out: serde_json::Map<String, Value> =
        shares.iter().map(|(id, s)| (format!("id{id}"), Value::from(s.get()))).collect();
    Ok(axum::Json(Value::Object(out)))
}

/// A debt account and its share of the payouts.
#[derive(Serialize, ToSchema)]
pub struct DebtLink {
    account: AccountView,
    share: i64,
}

async fn debt_links(state: &AppState, user_id: i64) -> ApiResult<Vec<DebtLink>> {
    let debts = state.services.accounts.active_debts(user_id).await?;
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
    Ok(page.respond(debt_links(&state, auth.user.id).await?))
}

#[derive(Default, Deserialize, ToSchema)]
pub struct LinkDebtRequest {
    /// The debt account's id.
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    account: Field<String>,
    /// 0 to 100.
    #[schema(value_type = i64, minimum = 0, maximum = 100, required = true)]
    #[serde(default)]
    share: Field<i64>,
}

impl RequestBody for LinkDebtRequest {
    type Parsed = (i64, Share);
    fn parse(self, c: &mut Check) -> Option<(i64, Share)> {
        let account = c.text("account", self.account);
        let account =
            c.parse("account", account, |a| parse_id(a.trim()).ok_or("Choose one of your active debt accounts."));
        let share = c.required("share", self.share);
        let share =
            c.parse("share", share, |s| Share::new(s).map_err(|_| "Ensure this value is an integer from 0 to 100."));
        Some((account?, share?))
    }
}

/// Give one debt account a share; the others are rescaled so the total stays 100.
#[utoipa::path(post, path = "/v1/link_debts", tag = "accounts", security(("token" = [])), request_body = LinkDebtRequest,
    responses((status = 201, body = [DebtLink]), (status = 400)))]
async fn link_debt(
    State(state): State<AppState>,
    auth: AuthUser,
    Valid((account, share)): Valid<LinkDebtRequest>,
) -> ApiResult<(StatusCode, axum::Json<Vec<DebtLink>>)> {
    state.services.accounts.link_debt(auth.user.id, account, share).await?;
    Ok((StatusCode::CREATED, axum::Json(debt_links(&state, auth.user.id).await?)))
}

/// A transaction. `roundup` is the spare change it gives.
#[derive(Serialize, ToSchema)]
pub struct TransactionView<'a> {
    account: &'a str,
    account_id: i64,
    uid: &'a str,
    #[schema(value_type = String)]
    amount: Cents,
    #[schema(value_type = String)]
    roundup: Cents,
    category: Option<&'a str>,
    top_level_category: Option<&'a str>,
    description: Option<&'a str>,
    original_description: Option<&'a str>,
    memo: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'a str,
    status: Option<&'a str>,
    #[schema(value_type = String)]
    date: NaiveDate,
    #[schema(value_type = Option<String>)]
    transacted_at: Option<Stamp>,
    #[schema(value_type = Option<String>)]
    posted_at: Option<Stamp>,
    #[schema(value_type = Option<String>)]
    created_at: Option<Stamp>,
    #[schema(value_type = Option<String>)]
    updated_at: Option<Stamp>,
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

/// A time as the API writes it, formatted straight into the output.
struct Stamp(DateTime<Utc>);

impl Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use chrono::{Datelike, Timelike};
        let t = self.0;
        if !(0..=9999).contains(&t.year()) {
            return serializer.collect_str(&t.format(DATETIME));
        }
        // DATETIME, without parsing the format again for every value of a long list.
        serializer.collect_str(&format_args!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ))
    }
}

/// A view of `$row`: the fields after `;` are copied as they are.
macro_rules! view_of_row {
    ($row:ident { $($field:ident: $value:expr),* $(,)? } ; $($same:ident),* $(,)?) => {
        TransactionView { $($field: $value,)* $($same: $row.$same,)* }
    };
}

impl<'a> TransactionView<'a> {
    fn of(t: &'a Transaction, rules: &RoundUpRules) -> TransactionView<'a> {
        view_of_row!(t {
            account: &t.account_name,
            uid: &t.uid,
            roundup: rules.roundup(t.kind, t.account_type_ds, t.amount),
            category: t.category.as_deref(),
            top_level_category: t.top_level_category.as_deref(),
            description: t.description.as_deref(),
            original_description: t.original_description.as_deref(),
            memo: t.memo.as_deref(),
            kind: t.kind.as_str(),
            status: t.status.as_deref(),
            transacted_at: t.transacted_at.map(Stamp),
            posted_at: t.posted_at.map(Stamp),
            created_at: Some(Stamp(t.created_at)),
            updated_at: Some(Stamp(t.updated_at)),
        }; account_id, amount, date, check_number, merchant_category_code, latitude, longitude, is_bill_pay,
            is_direct_deposit, is_expense, is_fee, is_income, is_overdraft_fee, is_payroll_advance)
    }
}

#[derive(Deserialize)]
struct TransactionQuery {
    account_id: Option<String>,
}

impl TransactionQuery {
    /// The account filter: none, or an id (anything else is a field error).
    fn account(&self) -> ApiResult<Option<i64>> {
        match self.account_id.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            None => Ok(None),
            Some(raw) => {
                parse_id(raw).map(Some).ok_or_else(|| ApiError::field("account_id", "A valid integer is required."))
            }
        }
    }
}

/// The user's transactions, newest first, optionally of one account. The rendered body is kept
/// (see [`super::rendered`]): `ETag` with `If-None-Match` answers 304, gzip when accepted.
#[utoipa::path(get, path = "/v1/transactions", tag = "accounts", security(("token" = [])),
    params(("account_id" = Option<i64>, Query), ("If-None-Match" = Option<String>, Header, description = "an `ETag` of this list")),
    responses(
        (status = 200, body = [TransactionView], headers(("ETag" = String), ("Cache-Control" = String, description = "`private, no-cache`"))),
        (status = 304, description = "the client's copy (named by `If-None-Match`) is current")
    ))]
async fn list_transactions(
    State(state): State<AppState>,
    auth: AuthUser,
    QueryParams(q): QueryParams<TransactionQuery>,
    page: Page,
    headers: HeaderMap,
) -> ApiResult<axum::response::Response> {
    // What each purchase rounds up to under the user's settings; a pause stops gathering, not
    // what the list shows.
    let rules = RoundUpRules { paused: false, ..crate::services::money::rules_of(&auth.user) };
    let user_id = auth.user.id;
    let account = q.account()?;
    let key = format!(
        "{user_id}/transactions/{}/{}/{account:?}/{}",
        rules.even_roundup,
        rules.multiplier.get(),
        page.cache_key()
    );
    let loader = state.clone();
    let body = state
        .bodies
        .get_or_render(user_id, key, move |known| async move {
            // The version is read before the rows: a change between the two shows as a newer
            // version at the next check, never as an older body kept as current.
            let version = loader.services.accounts.transaction_list_version(user_id).await?;
            if known == Some(version) {
                return Ok(Loaded::Current);
            }
            let body = render_transactions(&loader, user_id, rules, account, page).await?;
            Ok(Loaded::New { version, body: Box::new(body) })
        })
        .await?;
    body.respond(&headers).await
}

/// The list (or page) as JSON, written row by row as the database yields them.
async fn render_transactions(
    state: &AppState,
    user_id: i64,
    rules: RoundUpRules,
    account: Option<i64>,
    page: Page,
) -> ApiResult<Rendered> {
    let mut found = state.services.accounts.transactions(user_id, account, page.limit, page.offset).await?;
    let mut out = Vec::with_capacity(64 * 1024);
    let links = found.count.and_then(|count| page.links(count).map(|links| (count, links)));
    if let Some((count, (next, previous))) = &links {
        out.extend_from_slice(format!("{{\"count\":{count},\"next\":").as_bytes());
        serde_json::to_writer(&mut out, next).map_err(anyhow::Error::from)?;
        out.extend_from_slice(b",\"previous\":");
        serde_json::to_writer(&mut out, previous).map_err(anyhow::Error::from)?;
        out.extend_from_slice(b",\"results\":");
    }
    out.push(b'[');
    let mut first = true;
    while let Some(t) = found.rows.try_next().await? {
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut out, &TransactionView::of(&t, &rules)).map_err(anyhow::Error::from)?;
    }
    out.push(b']');
    if links.is_some() {
        out.push(b'}');
    }
    Ok(Rendered::new(out))
}
