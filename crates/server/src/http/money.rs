//! The money loop as the user sees it: the dashboard figures, the three transfer histories,
//! one-time contributions and a debt's payoff projection.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use donkies_domain::{Cents, CollectionHold};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiResult;
use super::extract::{AuthUser, IdPath};
use super::input::{Check, Field, RequestBody, Valid};
use super::members::datetime;
use super::page::Page;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_stat))
        .routes(routes!(list_transfers_prepare))
        .routes(routes!(list_transfers_donkies))
        .routes(routes!(list_transfers_user))
        .routes(routes!(list_transfers_debt))
        .routes(routes!(list_contributions, create_contribution))
        .routes(routes!(get_projection))
}

fn time(t: DateTime<Utc>) -> String {
    datetime(Some(t)).unwrap_or_default()
}

/// The dashboard's figures, in dollars as JSON numbers.
#[derive(Serialize, ToSchema)]
pub struct StatView {
    /// Collected from the user's bank into the Donkies account.
    amount_to_donkies: f64,
    /// Paid out to the user's debts (and, after closing, back to the user's bank).
    amount_to_user: f64,
    /// Collected and not yet given to a payout (it drops when a payout is made, not when it
    /// is paid).
    amount_available: f64,
    /// How many payouts were made.
    payments: i64,
    /// Why round-ups wait in the user's bank although a collection is due: `low_balance` (the
    /// collection would leave the round-up source below the user's `overdraft_floor`) or
    /// `stale_balance` (the bank's balance is older than 72 hours, or unknown; it wins when
    /// both apply); null when nothing about the balance holds the next collection.
    collection_hold: Option<CollectionHoldView>,
}

/// Why the next collection waits on the bank balance of the round-up source.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CollectionHoldView {
    LowBalance,
    StaleBalance,
}

impl From<CollectionHold> for CollectionHoldView {
    fn from(hold: CollectionHold) -> Self {
        match hold {
            CollectionHold::LowBalance { .. } => CollectionHoldView::LowBalance,
            CollectionHold::StaleBalance { .. } => CollectionHoldView::StaleBalance,
        }
    }
}

/// The dashboard's figures.
#[utoipa::path(get, path = "/v1/stat", tag = "transfers", security(("token" = [])),
    responses((status = 200, body = StatView)))]
async fn get_stat(State(state): State<AppState>, auth: AuthUser, headers: HeaderMap) -> ApiResult<Response> {
    let user_id = auth.user.id;
    state
        .kept(user_id, "stat".into(), &headers, move |state| async move {
            // Read now, not taken from the session: a change may have committed since.
            let user = state.services.identity.user(user_id).await?;
            let stat = state.services.money.stat(&user).await?;
            let view = StatView {
                amount_to_donkies: stat.amount_to_donkies.to_f64_dollars(),
                amount_to_user: stat.amount_to_user.to_f64_dollars(),
                amount_available: stat.amount_available.to_f64_dollars(),
                payments: stat.payments,
                collection_hold: stat.collection_hold.map(CollectionHoldView::from),
            };
            Ok(serde_json::to_vec(&view).map_err(anyhow::Error::from)?)
        })
        .await
}

/// Round-ups gathered from one debit account into one collection.
#[derive(Serialize, ToSchema)]
pub struct PrepareView {
    id: i64,
    /// The debit account's name.
    account: String,
    /// Decimal string, e.g. `"4.37"`.
    roundup: String,
    created_at: String,
}

/// Round-ups gathered per debit account, newest first.
#[utoipa::path(get, path = "/v1/transfers_prepare", tag = "transfers", security(("token" = [])),
    responses((status = 200, body = [PrepareView])))]
async fn list_transfers_prepare(
    State(state): State<AppState>,
    auth: AuthUser,
    page: Page,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let user_id = auth.user.id;
    let key = format!("transfers_prepare/{}", page.cache_key());
    state
        .kept(user_id, key, &headers, move |state| async move {
            let names = state.services.money.account_names(user_id).await?;
            let parts = state.services.money.collection_parts(user_id).await?;
            let views = parts
                .into_iter()
                .map(|p| PrepareView {
                    id: p.id,
                    account: names.get(&p.account_id).cloned().unwrap_or_default(),
                    roundup: p.amount.to_string(),
                    created_at: time(p.created_at),
                })
                .collect();
            page.render(views)
        })
        .await
}

/// One collection: a transfer from the user's bank to the Donkies account.
#[derive(Serialize, ToSchema)]
pub struct DonkiesTransferView {
    id: i64,
    /// The name of the account the money came from.
    account: String,
    amount: String,
    /// pending, processed, failed or cancelled.
    status: String,
    /// When the transfer was processed; null until then.
    sent_at: Option<String>,
    is_sent: bool,
    created_at: String,
    /// The ACH return code when it failed (e.g. `R01`).
    failure_code: Option<String>,
}

/// Collections sent to the Donkies account, newest first.
#[utoipa::path(get, path = "/v1/transfers_donkies", tag = "transfers", security(("token" = [])),
    responses((status = 200, body = [DonkiesTransferView])))]
async fn list_transfers_donkies(
    State(state): State<AppState>,
    auth: AuthUser,
    page: Page,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let user_id = auth.user.id;
    let key = format!("transfers_donkies/{}", page.cache_key());
    state
        .kept(user_id, key, &headers, move |state| async move {
            let names = state.services.money.account_names(user_id).await?;
            let list = state.services.money.collections(user_id).await?;
            let views = list
                .into_iter()
                .map(|c| DonkiesTransferView {
                    id: c.id,
                    account: names.get(&c.account_id).cloned().unwrap_or_default(),
                    amount: c.amount.to_string(),
                    status: c.status.as_str().to_owned(),
                    sent_at: datetime(c.sent_at),
                    is_sent: c.sent_at.is_some(),
                    created_at: time(c.created_at),
                    failure_code: c.failure_code,
                })
                .collect();
            page.render(views)
        })
        .await
}

/// One payout of held money.
#[derive(Serialize, ToSchema)]
pub struct UserTransferView {
    id: i64,
    amount: String,
    created_at: String,
}

/// Payouts to the user's debts, newest first.
#[utoipa::path(get, path = "/v1/transfers_user", tag = "transfers", security(("token" = [])),
    responses((status = 200, body = [UserTransferView])))]
async fn list_transfers_user(
    State(state): State<AppState>,
    auth: AuthUser,
    page: Page,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let user_id = auth.user.id;
    let key = format!("transfers_user/{}", page.cache_key());
    state
        .kept(user_id, key, &headers, move |state| async move {
            let list = state.services.money.payouts(user_id).await?;
            let views = list
                .into_iter()
                .map(|p| UserTransferView { id: p.id, amount: p.amount.to_string(), created_at: time(p.created_at) })
                .collect();
            page.render(views)
        })
        .await
}

/// One payout's part for one debt account.
#[derive(Serialize, ToSchema)]
pub struct DebtTransferView {
    id: i64,
    /// The debt account's name (for a refund, the bank account's).
    account: String,
    account_id: i64,
    amount: String,
    /// The account's share of the payout, in percent.
    share: i64,
    created_at: String,
    processed_at: Option<String>,
    is_processed: bool,
    /// `dwolla`: sent through the payment provider; `manual`: paid by Donkies by hand;
    /// `refund`: sent back to the user's own bank.
    method: String,
    /// pending, processed or failed.
    status: String,
}

/// Each payout's parts per debt account, newest first.
#[utoipa::path(get, path = "/v1/transfers_debt", tag = "transfers", security(("token" = [])),
    responses((status = 200, body = [DebtTransferView])))]
async fn list_transfers_debt(
    State(state): State<AppState>,
    auth: AuthUser,
    page: Page,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let user_id = auth.user.id;
    let key = format!("transfers_debt/{}", page.cache_key());
    state
        .kept(user_id, key, &headers, move |state| async move {
            let names = state.services.money.account_names(user_id).await?;
            let parts = state.services.money.payout_parts(user_id).await?;
            let views = parts
                .into_iter()
                .map(|p| DebtTransferView {
                    id: p.id,
                    account: names.get(&p.account_id).cloned().unwrap_or_default(),
                    account_id: p.account_id,
                    amount: p.amount.to_string(),
                    share: p.share,
                    created_at: time(p.created_at),
                    processed_at: datetime(p.processed_at),
                    is_processed: p.status == "processed",
                    method: p.method.as_str().to_owned(),
                    status: p.status,
                })
                .collect();
            page.render(views)
        })
        .await
}

/// A one-time extra contribution.
#[derive(Serialize, ToSchema)]
pub struct ContributionView {
    id: i64,
    amount: String,
    created_at: String,
    /// Whether a collection has taken it.
    is_collected: bool,
}

#[derive(Default, Deserialize, ToSchema)]
pub struct ContributionRequest {
    /// Dollars and cents, e.g. `"25.00"`: from 0.01 to 10000.00; with the user's other
    /// contributions of the UTC day (month), at most the daily (monthly) cap.
    #[schema(value_type = String, example = "25.00", required = true, pattern = r"^\d{1,5}(\.\d{1,2})?$")]
    #[serde(default)]
    amount: Field<String>,
}

/// The largest one-time contribution.
const MAX_CONTRIBUTION: Cents = Cents::new(1_000_000);

impl RequestBody for ContributionRequest {
    type Parsed = Cents;
    fn parse(self, c: &mut Check) -> Option<Cents> {
        let amount = c.text("amount", self.amount);
        c.parse("amount", amount, |a| match Cents::parse(a.trim()) {
            Ok(cents) if cents > Cents::ZERO && cents <= MAX_CONTRIBUTION => Ok(cents),
            Ok(_) => Err("Ensure this value is between 0.01 and 10000.00.".to_owned()),
            Err(e) => Err(e.to_string()),
        })
    }
}

fn contribution_view(c: donkies_store::money_loop::Contribution) -> ContributionView {
    ContributionView {
        id: c.id,
        amount: c.amount.to_string(),
        created_at: time(c.created_at),
        is_collected: c.collection_id.is_some(),
    }
}

/// Add a one-time extra contribution; it is collected with the next collection.
#[utoipa::path(post, path = "/v1/contributions", tag = "transfers", security(("token" = [])),
    request_body = ContributionRequest,
    responses((status = 201, body = ContributionView), (status = 400, description = "a bad amount, one that would take the day's or month's contributions above a cap, or the account is closed")))]
async fn create_contribution(
    State(state): State<AppState>,
    auth: AuthUser,
    Valid(amount): Valid<ContributionRequest>,
) -> ApiResult<(StatusCode, axum::Json<ContributionView>)> {
    let c = state.services.money.contribute(&auth.user, amount).await?;
    Ok((StatusCode::CREATED, axum::Json(contribution_view(c))))
}

/// The user's contributions, newest first.
#[utoipa::path(get, path = "/v1/contributions", tag = "transfers", security(("token" = [])),
    responses((status = 200, body = [ContributionView])))]
async fn list_contributions(
    State(state): State<AppState>,
    auth: AuthUser,
    page: Page,
) -> ApiResult<axum::response::Response> {
    let list = state.services.money.contributions(auth.user.id).await?;
    Ok(page.respond(list.into_iter().map(contribution_view).collect()))
}

/// How a debt is paid off with and without the user's round-ups.
#[derive(Serialize, ToSchema)]
pub struct ProjectionView {
    account_id: i64,
    balance: String,
    /// Percent, as the bank reports it.
    apr: Option<f64>,
    minimum_payment: String,
    /// The user's average monthly round-up of the last 90 days, times this account's share.
    monthly_roundup: String,
    /// Months to payoff paying only the minimum; null when it never pays off.
    months_to_payoff: Option<u32>,
    /// Months to payoff paying the minimum plus the monthly round-up.
    months_to_payoff_with_roundups: Option<u32>,
    months_saved: Option<u32>,
    interest: Option<String>,
    interest_with_roundups: Option<String>,
    interest_saved: Option<String>,
}

/// The payoff projection of one of the user's debt accounts.
#[utoipa::path(get, path = "/v1/accounts/{id}/projection", tag = "accounts", security(("token" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ProjectionView), (status = 400, description = "not a debt account"), (status = 404)))]
async fn get_projection(
    State(state): State<AppState>,
    auth: AuthUser,
    IdPath(id): IdPath,
) -> ApiResult<axum::Json<ProjectionView>> {
    let (monthly, p) = state.services.money.projection(&auth.user, id).await?;
    let account = state.services.accounts.account(auth.user.id, id).await?;
    let money = |c: Option<Cents>| c.map(|c| c.to_string());
    Ok(axum::Json(ProjectionView {
        account_id: id,
        balance: account.balance.unwrap_or_default().to_string(),
        apr: account.apr,
        minimum_payment: account.minimum_payment.unwrap_or_default().to_string(),
        monthly_roundup: monthly.to_string(),
        months_to_payoff: p.months_without,
        months_to_payoff_with_roundups: p.months_with,
        months_saved: p.months_saved,
        interest: money(p.interest_without),
        interest_with_roundups: money(p.interest_with),
        interest_saved: money(p.interest_saved),
    }))
}
