//! The HTTP surface: Atrium endpoints behind the fault and key checks, and
//! the `/__sim` control endpoints.

use std::ops::Range;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{Days, NaiveDate, Utc};
use donkies_atrium::wire::{
    API_KEY_HEADER, AccountBody, AccountsBody, CLIENT_ID_HEADER, ChallengesBody, CredentialsBody,
    DEFAULT_RECORDS_PER_PAGE, InstitutionBody, InstitutionQuery, InstitutionsBody, MAX_RECORDS_PER_PAGE, MemberBody,
    MemberStatusBody, MemberUpdateBody, MembersBody, NewMemberBody, NewUserBody, PageQuery, Pagination,
    ResumeMemberBody, Transaction, TransactionBody, TransactionQuery, TransactionsBody, UserBody, UsersBody,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::{ApiError, atrium_json};
use super::store::Now;
use super::{Faults, SimEvent, SimSettings, SimState};

type Shared = State<Arc<SimState>>;
type Reply = Result<Response, ApiError>;

/// Days before today that `from_date` defaults to, and after for `to_date`.
const DEFAULT_DAYS_BACK: u64 = 90;
const DEFAULT_DAYS_AHEAD: u64 = 5;

pub(crate) fn router(state: Arc<SimState>) -> Router {
    const MEMBER: &str = "/users/{user_guid}/members/{member_guid}";
    let api = Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{user_guid}", get(read_user).put(update_user).delete(delete_user))
        .route("/institutions", get(list_institutions))
        .route("/institutions/{code}", get(read_institution))
        .route("/institutions/{code}/credentials", get(list_institution_credentials))
        .route("/users/{user_guid}/members", get(list_members).post(create_member))
        .route(MEMBER, get(read_member).put(update_member).delete(delete_member))
        .route(&format!("{MEMBER}/status"), get(read_member_status))
        .route(&format!("{MEMBER}/aggregate"), post(aggregate_member))
        .route(&format!("{MEMBER}/challenges"), get(list_member_challenges))
        .route(&format!("{MEMBER}/resume"), put(resume_member))
        .route(&format!("{MEMBER}/credentials"), get(list_member_credentials))
        .route(&format!("{MEMBER}/accounts"), get(list_member_accounts))
        .route(&format!("{MEMBER}/transactions"), get(list_member_transactions))
        .route("/users/{user_guid}/accounts", get(list_accounts))
        .route("/users/{user_guid}/accounts/{account_guid}", get(read_account))
        .route("/users/{user_guid}/accounts/{account_guid}/transactions", get(list_account_transactions))
        .route("/users/{user_guid}/transactions", get(list_transactions))
        .route("/users/{user_guid}/transactions/{transaction_guid}", get(read_transaction))
        .fallback(unknown_path)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard));

    let control = Router::new()
        .route("/__sim/faults", get(read_faults).post(replace_faults))
        .route("/__sim/settings", get(read_settings).post(change_settings))
        .route("/__sim/reset", post(reset))
        .route("/__sim/members/{member_guid}/events", post(apply_member_events));

    control.merge(api).with_state(state)
}

// ---------------------------------------------------------------------------
// Faults, keys and media type

/// Runs before every Atrium endpoint: added latency, injected failures, then
/// the key headers (401) and the `Accept` version (406).
async fn guard(State(sim): Shared, request: Request, next: Next) -> Response {
    let (latency, injected) = {
        let mut knobs = sim.knobs();
        let faults = knobs.faults.clone();
        let injected = faults.draw(&mut knobs.fault_rng).map(|status| match status {
            429 => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
            500 if faults.outage.is_none() => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error (simulated)")
            }
            _ => ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "Atrium is unavailable (simulated outage)",
            ),
        });
        (faults.latency, injected)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(error) = injected {
        return error.into_response();
    }

    let headers = request.headers();
    let header_is =
        |name: &str, expected: &str| headers.get(name).is_some_and(|value| value.as_bytes() == expected.as_bytes());
    if !header_is(API_KEY_HEADER, &sim.api_key) || !header_is(CLIENT_ID_HEADER, &sim.client_id) {
        return ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized: missing or invalid MX-API-Key or MX-Client-ID")
            .into_response();
    }
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).unwrap_or("");
    if accept.contains("application/vnd.") && !accept.contains("application/vnd.mx.atrium.v1") {
        return ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "You didn't specify a valid API version in the Accept header",
        )
        .into_response();
    }
    let response = next.run(request).await;
    // What the request changed is kept before the answer leaves.
    match sim.flush().await {
        Ok(()) => response,
        Err(e) => {
            tracing::error!("atrium simulator: {e}");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").into_response()
        }
    }
}

async fn unknown_path() -> ApiError {
    ApiError::not_found("resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

// ---------------------------------------------------------------------------
// Extractors answering with Atrium's error body

/// `Query` whose rejection is a 400 with Atrium's error body.
struct AtriumQuery<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AtriumQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// `Json` whose rejection carries Atrium's error body.
struct AtriumJson<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AtriumJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(request, state).await.map(|Json(value)| Self(value)).map_err(|rejection| {
            let status = match rejection.status() {
                StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, rejection.body_text())
        })
    }
}

fn ok<T: Serialize>(body: &T) -> Reply {
    Ok(atrium_json(StatusCode::OK, body))
}

fn no_content() -> Reply {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The slice of `total` items one page shows, and its pagination object.
/// `records_per_page` defaults to 25 and is capped at 1000; pages count from 1.
fn window(total: usize, page: Option<u32>, per_page: Option<u32>) -> (Range<usize>, Pagination) {
    let per_page = match per_page {
        None | Some(0) => DEFAULT_RECORDS_PER_PAGE,
        Some(n) => n.min(MAX_RECORDS_PER_PAGE),
    };
    let page = page.unwrap_or(1).max(1);
    let per = per_page as usize;
    let total_pages = total.div_ceil(per).max(1);
    let start = (page as usize - 1).saturating_mul(per).min(total);
    let end = start.saturating_add(per).min(total);
    let pagination = Pagination {
        current_page: page,
        per_page,
        total_entries: total as u64,
        total_pages: u32::try_from(total_pages).unwrap_or(u32::MAX),
    };
    (start..end, pagination)
}

fn paged<T: Clone>(items: &[T], page: Option<u32>, per_page: Option<u32>) -> (Vec<T>, Pagination) {
    let (range, pagination) = window(items.len(), page, per_page);
    (items[range].to_vec(), pagination)
}

// ---------------------------------------------------------------------------
// Users

async fn create_user(State(sim): Shared, AtriumJson(body): AtriumJson<NewUserBody>) -> Reply {
    let user = sim.db().create_user(body.user)?;
    ok(&UserBody { user })
}

async fn list_users(State(sim): Shared, AtriumQuery(query): AtriumQuery<PageQuery>) -> Reply {
    let users = sim.db().users();
    let (users, pagination) = paged(&users, query.page, query.records_per_page);
    ok(&UsersBody { users, pagination })
}

async fn read_user(State(sim): Shared, Path(user_guid): Path<String>) -> Reply {
    let user = sim.db().user(&user_guid)?;
    ok(&UserBody { user })
}

async fn update_user(
    State(sim): Shared,
    Path(user_guid): Path<String>,
    AtriumJson(body): AtriumJson<NewUserBody>,
) -> Reply {
    let user = sim.db().update_user(&user_guid, body.user)?;
    ok(&UserBody { user })
}

async fn delete_user(State(sim): Shared, Path(user_guid): Path<String>) -> Reply {
    sim.db().delete_user(&user_guid)?;
    no_content()
}

// ---------------------------------------------------------------------------
// Institutions

async fn list_institutions(State(sim): Shared, AtriumQuery(query): AtriumQuery<InstitutionQuery>) -> Reply {
    let needle = query.name.as_deref().map(str::to_lowercase).unwrap_or_default();
    let matching: Vec<_> = sim
        .catalog
        .iter()
        .filter(|entry| entry.institution.name.to_lowercase().contains(&needle))
        .map(|entry| entry.institution.clone())
        .collect();
    let (institutions, pagination) = paged(&matching, query.page, query.records_per_page);
    ok(&InstitutionsBody { institutions, pagination })
}

async fn read_institution(State(sim): Shared, Path(code): Path<String>) -> Reply {
    let institution = sim.db().institution(&code)?.institution.clone();
    ok(&InstitutionBody { institution })
}

async fn list_institution_credentials(State(sim): Shared, Path(code): Path<String>) -> Reply {
    let credentials = sim.db().institution(&code)?.credentials.clone();
    ok(&CredentialsBody { credentials })
}

// ---------------------------------------------------------------------------
// Members

async fn create_member(
    State(sim): Shared,
    Path(user_guid): Path<String>,
    AtriumJson(body): AtriumJson<NewMemberBody>,
) -> Reply {
    let timing = sim.timing();
    let member = sim.db().create_member(&user_guid, body.member, timing, Now::read())?;
    ok(&MemberBody { member })
}

async fn list_members(
    State(sim): Shared,
    Path(user_guid): Path<String>,
    AtriumQuery(query): AtriumQuery<PageQuery>,
) -> Reply {
    let members = sim.db().members(&user_guid, Now::read())?;
    let (members, pagination) = paged(&members, query.page, query.records_per_page);
    ok(&MembersBody { members, pagination })
}

async fn read_member(State(sim): Shared, Path((user_guid, member_guid)): Path<(String, String)>) -> Reply {
    let member = sim.db().member(&user_guid, &member_guid, Now::read())?;
    ok(&MemberBody { member })
}

async fn read_member_status(State(sim): Shared, Path((user_guid, member_guid)): Path<(String, String)>) -> Reply {
    let member = sim.db().member_status(&user_guid, &member_guid, Now::read())?;
    ok(&MemberStatusBody { member })
}

async fn update_member(
    State(sim): Shared,
    Path((user_guid, member_guid)): Path<(String, String)>,
    AtriumJson(body): AtriumJson<MemberUpdateBody>,
) -> Reply {
    let timing = sim.timing();
    let member = sim.db().update_member(&user_guid, &member_guid, body.member, timing, Now::read())?;
    ok(&MemberBody { member })
}

async fn aggregate_member(State(sim): Shared, Path((user_guid, member_guid)): Path<(String, String)>) -> Reply {
    let timing = sim.timing();
    let (status, member) = sim.db().aggregate_member(&user_guid, &member_guid, timing, Now::read())?;
    Ok(atrium_json(status, &MemberBody { member }))
}

async fn list_member_challenges(State(sim): Shared, Path((user_guid, member_guid)): Path<(String, String)>) -> Reply {
    let challenges = sim.db().challenges(&user_guid, &member_guid, Now::read())?;
    if challenges.is_empty() {
        return no_content();
    }
    ok(&ChallengesBody { challenges })
}

async fn resume_member(
    State(sim): Shared,
    Path((user_guid, member_guid)): Path<(String, String)>,
    AtriumJson(body): AtriumJson<ResumeMemberBody>,
) -> Reply {
    let timing = sim.timing();
    let member = sim.db().resume_member(&user_guid, &member_guid, body.member.challenges, timing, Now::read())?;
    ok(&MemberBody { member })
}

async fn list_member_credentials(State(sim): Shared, Path((user_guid, member_guid)): Path<(String, String)>) -> Reply {
    let credentials = sim.db().member_credentials(&user_guid, &member_guid)?;
    ok(&CredentialsBody { credentials })
}

async fn delete_member(State(sim): Shared, Path((user_guid, member_guid)): Path<(String, String)>) -> Reply {
    sim.db().delete_member(&user_guid, &member_guid)?;
    no_content()
}

// ---------------------------------------------------------------------------
// Accounts and transactions

async fn list_member_accounts(
    State(sim): Shared,
    Path((user_guid, member_guid)): Path<(String, String)>,
    AtriumQuery(query): AtriumQuery<PageQuery>,
) -> Reply {
    let count = sim.transactions_per_member();
    let holdings = sim.db().member_data(&user_guid, &member_guid, count, Now::read())?;
    let (accounts, pagination) = paged(&holdings.accounts, query.page, query.records_per_page);
    ok(&AccountsBody { accounts, pagination })
}

async fn list_accounts(
    State(sim): Shared,
    Path(user_guid): Path<String>,
    AtriumQuery(query): AtriumQuery<PageQuery>,
) -> Reply {
    let count = sim.transactions_per_member();
    let data = sim.db().user_data(&user_guid, count, Now::read())?;
    let accounts: Vec<_> = data.iter().flat_map(|h| h.accounts.iter().cloned()).collect();
    let (accounts, pagination) = paged(&accounts, query.page, query.records_per_page);
    ok(&AccountsBody { accounts, pagination })
}

async fn read_account(State(sim): Shared, Path((user_guid, account_guid)): Path<(String, String)>) -> Reply {
    let count = sim.transactions_per_member();
    let data = sim.db().user_data(&user_guid, count, Now::read())?;
    let account = data
        .iter()
        .flat_map(|h| h.accounts.iter())
        .find(|account| account.guid == account_guid)
        .cloned()
        .ok_or_else(|| ApiError::not_found("account"))?;
    ok(&AccountBody { account })
}

/// One page of the transactions in `lists` (each sorted by date) whose date
/// falls in the query's window, oldest first.
fn transactions_page<'a>(
    lists: impl Iterator<Item = &'a Transaction>,
    several_lists: bool,
    query: &TransactionQuery,
) -> Reply {
    let today = Utc::now().date_naive();
    let from = query.from_date.unwrap_or_else(|| days_from(today, DEFAULT_DAYS_BACK, false));
    let to = query.to_date.unwrap_or_else(|| days_from(today, DEFAULT_DAYS_AHEAD, true));
    let mut matching: Vec<&Transaction> = lists.filter(|t| t.date >= from && t.date <= to).collect();
    if several_lists {
        // Stable: members keep their creation order within a day.
        matching.sort_by_key(|t| t.date);
    }
    let (range, pagination) = window(matching.len(), query.page, query.records_per_page);
    let transactions = matching[range].iter().map(|t| (*t).clone()).collect();
    ok(&TransactionsBody { transactions, pagination })
}

fn days_from(today: NaiveDate, days: u64, ahead: bool) -> NaiveDate {
    let shifted = if ahead { today.checked_add_days(Days::new(days)) } else { today.checked_sub_days(Days::new(days)) };
    shifted.unwrap_or(today)
}

async fn list_member_transactions(
    State(sim): Shared,
    Path((user_guid, member_guid)): Path<(String, String)>,
    AtriumQuery(query): AtriumQuery<TransactionQuery>,
) -> Reply {
    let count = sim.transactions_per_member();
    let holdings = sim.db().member_data(&user_guid, &member_guid, count, Now::read())?;
    transactions_page(holdings.transactions.iter(), false, &query)
}

async fn list_transactions(
    State(sim): Shared,
    Path(user_guid): Path<String>,
    AtriumQuery(query): AtriumQuery<TransactionQuery>,
) -> Reply {
    let count = sim.transactions_per_member();
    let data = sim.db().user_data(&user_guid, count, Now::read())?;
    let all = data.iter().flat_map(|h| h.transactions.iter());
    transactions_page(all, data.len() > 1, &query)
}

async fn list_account_transactions(
    State(sim): Shared,
    Path((user_guid, account_guid)): Path<(String, String)>,
    AtriumQuery(query): AtriumQuery<TransactionQuery>,
) -> Reply {
    let count = sim.transactions_per_member();
    let data = sim.db().user_data(&user_guid, count, Now::read())?;
    let holdings = data
        .iter()
        .find(|h| h.accounts.iter().any(|a| a.guid == account_guid))
        .ok_or_else(|| ApiError::not_found("account"))?;
    let of_account = holdings.transactions.iter().filter(|t| t.account_guid.as_deref() == Some(account_guid.as_str()));
    transactions_page(of_account, false, &query)
}

async fn read_transaction(State(sim): Shared, Path((user_guid, transaction_guid)): Path<(String, String)>) -> Reply {
    let count = sim.transactions_per_member();
    let data = sim.db().user_data(&user_guid, count, Now::read())?;
    let transaction = data
        .iter()
        .flat_map(|h| h.transactions.iter())
        .find(|t| t.guid == transaction_guid)
        .cloned()
        .ok_or_else(|| ApiError::not_found("transaction"))?;
    ok(&TransactionBody { transaction })
}

// ---------------------------------------------------------------------------
// Control endpoints

async fn read_faults(State(sim): Shared) -> Json<Faults> {
    Json(sim.knobs().faults.clone())
}

async fn replace_faults(State(sim): Shared, AtriumJson(faults): AtriumJson<Faults>) -> Result<Json<Faults>, ApiError> {
    faults.validate().map_err(ApiError::bad_request)?;
    sim.knobs().faults = faults.clone();
    Ok(Json(faults))
}

async fn read_settings(State(sim): Shared) -> Json<SimSettings> {
    Json(sim.knobs().settings.clone())
}

/// A partial change of [`SimSettings`]; `"transactions_per_member": null`
/// restores the default history.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    #[serde(default)]
    step_ms: Option<u64>,
    #[serde(default)]
    challenge_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    transactions_per_member: Option<Option<u32>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(deserializer).map(Some)
}

async fn change_settings(State(sim): Shared, AtriumJson(change): AtriumJson<SettingsChange>) -> Json<SimSettings> {
    let mut knobs = sim.knobs();
    if let Some(ms) = change.step_ms {
        knobs.settings.step = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = change.challenge_timeout_ms {
        knobs.settings.challenge_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(count) = change.transactions_per_member {
        knobs.settings.transactions_per_member = count;
    }
    Json(knobs.settings.clone())
}

/// `POST /__sim/members/{member_guid}/events`: a JSON array of events
/// (whatever the content type), answered with the guid each made or `null`.
async fn apply_member_events(State(sim): Shared, Path(member_guid): Path<String>, body: axum::body::Bytes) -> Reply {
    let events: Vec<SimEvent> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("expected a JSON array of events: {e}; no event was applied")))?;
    let created = sim.apply_events(&member_guid, events).await?;
    Ok(Json(created).into_response())
}

async fn reset(State(sim): Shared) -> Result<StatusCode, ApiError> {
    sim.reset().await.map_err(|e| {
        tracing::error!("atrium simulator: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    })?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_item_once() {
        let (range, pagination) = window(60, Some(3), Some(25));
        assert_eq!(range, 50..60);
        assert_eq!(pagination.total_pages, 3);
        assert_eq!(pagination.total_entries, 60);
        let (range, _) = window(60, Some(4), Some(25));
        assert!(range.is_empty());
    }

    #[test]
    fn an_empty_list_has_one_page() {
        let (range, pagination) = window(0, None, None);
        assert!(range.is_empty());
        assert_eq!(pagination, Pagination { current_page: 1, per_page: 25, total_entries: 0, total_pages: 1 });
    }

    #[test]
    fn page_size_is_capped_at_one_thousand() {
        let (range, pagination) = window(5_000, Some(1), Some(5_000));
        assert_eq!(range, 0..1_000);
        assert_eq!(pagination.per_page, 1_000);
        assert_eq!(window(10, Some(1), Some(0)).1.per_page, 25);
    }
}
