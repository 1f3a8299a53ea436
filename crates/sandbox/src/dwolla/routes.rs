//! The HTTP surface: the token endpoint and the Dwolla API behind the fault,
//! media-type, token and idempotency checks, and the `/__sim` endpoints.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use donkies_dwolla::ExposeSecret;
use donkies_dwolla::wire::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::{ApiError, hal, oauth_error};
use super::{DwollaSimStats, Faults, IDEMPOTENCY, IDEMPOTENCY_LIFETIME, Remembered, SimState, StoredAnswer, lock};
use crate::journal::Row;

type Shared = State<Arc<SimState>>;
type Reply = Result<Response, ApiError>;

/// Default page size, and the largest for customers (B1.3).
const DEFAULT_LIMIT: u32 = 25;
const MAX_LIMIT: u32 = 200;

pub(crate) fn router(state: Arc<SimState>) -> Router {
    let api = Router::new()
        .route("/", get(root))
        .route("/accounts/{id}", get(read_account))
        .route("/accounts/{id}/funding-sources", get(list_account_funding_sources))
        .route("/customers", get(list_customers).post(create_customer))
        .route("/customers/{id}", get(read_customer).post(update_customer))
        .route("/customers/{id}/funding-sources", get(list_customer_funding_sources).post(create_funding_source))
        .route("/customers/{id}/iav-token", post(create_iav_token))
        .route("/customers/{id}/transfers", get(list_customer_transfers))
        .route(
            "/funding-sources/{id}",
            get(read_funding_source).post(update_funding_source).delete(remove_funding_source),
        )
        .route("/funding-sources/{id}/balance", get(read_balance))
        .route("/funding-sources/{id}/micro-deposits", get(read_micro_deposits).post(post_micro_deposits))
        .route("/transfers", post(create_transfer))
        .route("/transfers/{id}", get(read_transfer).post(update_transfer))
        .route("/transfers/{id}/failure", get(read_transfer_failure))
        .route("/webhook-subscriptions", get(list_subscriptions).post(create_subscription))
        .route(
            "/webhook-subscriptions/{id}",
            get(read_subscription).post(pause_subscription).delete(delete_subscription),
        )
        .route("/events", get(list_events))
        .route("/events/{id}", get(read_event))
        .route("/sandbox-simulations", post(simulate))
        .fallback(unknown_path)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), idempotency))
        .layer(middleware::from_fn_with_state(state.clone(), authorize));
    let token = Router::new().route("/token", post(issue_token));
    let served = api.merge(token).layer(middleware::from_fn_with_state(state.clone(), faults_then_webhooks));

    let control = Router::new()
        .route("/__sim/faults", get(read_faults).post(replace_faults))
        .route("/__sim/stats", get(read_stats))
        .route("/__sim/iav/{token}", post(complete_iav))
        .route("/__sim/simulate", post(simulate));

    control.merge(served).with_state(state)
}

// ---------------------------------------------------------------------------
// Middleware

/// Runs before everything but `/__sim`: added latency and injected failures;
/// after the answer, sends the webhooks of what changed.
async fn faults_then_webhooks(State(sim): Shared, request: Request, next: Next) -> Response {
    let (latency, injected) = sim.faults.roll();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match injected {
        Some(429) => {
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Too many requests.")
                .into_response();
        }
        Some(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let message = format!("A server error occurred. Error ID: {}.", Uuid::new_v4());
            return ApiError::new(status, "ServerError", message).into_response();
        }
        None => {}
    }
    let response = next.run(request).await;
    match sim.flush().await {
        Ok(()) => response,
        Err(e) => unsaved(&e),
    }
}

/// The answer when what a request changed could not be kept.
fn unsaved(error: &std::io::Error) -> Response {
    tracing::error!("dwolla simulator: {error}");
    let message = format!("A server error occurred. Error ID: {}.", Uuid::new_v4());
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "ServerError", message).into_response()
}

/// The API version in `Accept` (406 otherwise), then the bearer token (401).
async fn authorize(State(sim): Shared, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).unwrap_or("");
    if !accept.contains(MEDIA_TYPE) {
        return ApiError::new(StatusCode::NOT_ACCEPTABLE, "InvalidVersion", "Missing or invalid API version.")
            .into_response();
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = bearer else {
        return ApiError::unauthorized("InvalidCredentials", "Missing or invalid Authorization header.")
            .into_response();
    };
    let expiry = lock(&sim.tokens).get(token).copied();
    let refusal = match expiry {
        None => Some(("InvalidAccessToken", "Invalid access token.")),
        Some(expiry) if expiry <= Instant::now() => {
            Some(("ExpiredAccessToken", "Generate a new access token using your client credentials."))
        }
        Some(_) => None,
    };
    if let Some((code, message)) = refusal {
        sim.rejected_tokens.fetch_add(1, Ordering::Relaxed);
        return ApiError::unauthorized(code, message).into_response();
    }
    next.run(request).await
}

/// A POST with an `Idempotency-Key` seen in the last 24 hours gets the first
/// answer again (B1.4); one still running gets 409. Server errors are not
/// remembered, so a retry after one is served afresh.
async fn idempotency(State(sim): Shared, request: Request, next: Next) -> Response {
    let key = (request.method() == Method::POST)
        .then(|| request.headers().get(IDEMPOTENCY_KEY_HEADER))
        .flatten()
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let Some(key) = key else {
        return next.run(request).await;
    };
    {
        let mut remembered = lock(&sim.idempotency);
        match remembered.get(&key) {
            Some(Remembered::Done { at, status, location, body }) if at.elapsed() < IDEMPOTENCY_LIFETIME => {
                return replay(*status, location.clone(), body.clone());
            }
            Some(Remembered::InFlight) => {
                let message = "A request with this idempotency key is still being processed.";
                return ApiError::new(StatusCode::CONFLICT, "Conflict", message).into_response();
            }
            _ => {
                remembered.insert(key.clone(), Remembered::InFlight);
            }
        }
    }
    let (parts, body) = next.run(request).await.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut remembered = lock(&sim.idempotency);
    if parts.status.is_server_error() {
        remembered.remove(&key);
    } else {
        let location = parts.headers.get(header::LOCATION).cloned();
        sim.stage(|| Row::put(IDEMPOTENCY, key.clone(), &StoredAnswer::new(parts.status, location.as_ref(), &body)));
        remembered
            .insert(key, Remembered::Done { at: Instant::now(), status: parts.status, location, body: body.clone() });
    }
    Response::from_parts(parts, Body::from(body))
}

fn replay(status: StatusCode, location: Option<HeaderValue>, body: Bytes) -> Response {
    let mut response = (status, body.clone()).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if !body.is_empty() {
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    }
    response
}

async fn unknown_path() -> ApiError {
    ApiError::not_found("The requested resource was not found.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "Method not allowed.")
}

// ---------------------------------------------------------------------------
// Bodies and answers

/// A JSON body whatever its content type (Dwolla takes its vendor type and
/// `application/json`); bad syntax is Dwolla's 400 `BadRequest`.
struct DwollaJson<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for DwollaJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|_| ApiError::bad_request())?;
        serde_json::from_slice(&bytes).map(Self).map_err(|_| ApiError::bad_request())
    }
}

fn ok<T: Serialize>(body: &T) -> Reply {
    Ok(hal(StatusCode::OK, body))
}

/// 201 with an empty body and the new resource in `Location`.
fn created(location: String) -> Reply {
    let location = HeaderValue::from_str(&location).map_err(|_| ApiError::bad_request())?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

/// One page of `items` as a HAL collection with self/first/last/prev/next.
fn page<T: Serialize>(href: String, name: &str, items: Vec<T>, query: PageQuery) -> Reply {
    let limit = query.limit.filter(|limit| *limit > 0).unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT) as usize;
    let offset = query.offset.unwrap_or(0) as usize;
    let total = items.len();
    let at = |offset: usize| Link::new(format!("{href}?limit={limit}&offset={offset}"));
    let mut links = Links::from([
        ("self".to_owned(), at(offset)),
        ("first".to_owned(), at(0)),
        ("last".to_owned(), at(total.saturating_sub(1) / limit * limit)),
    ]);
    if offset + limit < total {
        links.insert("next".into(), at(offset + limit));
    }
    if offset > 0 {
        links.insert("prev".into(), at(offset.saturating_sub(limit)));
    }
    let items: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    ok(&Collection::new(name, items, total as u64, links))
}

/// A whole list as a HAL collection.
fn all<T: Serialize>(href: String, name: &str, items: Vec<T>) -> Reply {
    let total = items.len() as u64;
    ok(&Collection::new(name, items, total, Links::from([("self".to_owned(), Link::new(href))])))
}

// ---------------------------------------------------------------------------
// Token (B1.1)

/// Credentials from `Authorization: Basic`, else from the form body.
fn client_credentials(headers: &HeaderMap, form: &TokenRequest) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| BASE64.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| pair.split_once(':').map(|(key, secret)| (key.to_owned(), secret.to_owned())));
    basic.or_else(|| Some((form.client_id.clone()?, form.client_secret.as_ref()?.expose_secret().to_owned())))
}

async fn issue_token(State(sim): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<TokenRequest>(&body) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if form.grant_type != "client_credentials" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let valid = client_credentials(&headers, &form).is_some_and(|(key, secret)| key == sim.key && secret == sim.secret);
    if !valid {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    lock(&sim.tokens).insert(token.clone(), Instant::now() + sim.token_lifetime);
    sim.token_requests.fetch_add(1, Ordering::Relaxed);
    let body = TokenResponse {
        access_token: token.into(),
        token_type: "bearer".into(),
        expires_in: sim.token_lifetime.as_secs().max(1),
    };
    axum::Json(body).into_response()
}

// ---------------------------------------------------------------------------
// Root, Account, customers

async fn root(State(sim): Shared) -> Reply {
    ok(&sim.db().root())
}

async fn read_account(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().account(&id)?)
}

async fn list_account_funding_sources(State(sim): Shared, Path(id): Path<String>) -> Reply {
    let db = sim.db();
    all(db.href(&["accounts", &id, "funding-sources"]), "funding-sources", db.account_sources(&id)?)
}

async fn create_customer(State(sim): Shared, DwollaJson(body): DwollaJson<NewCustomer>) -> Reply {
    let mut db = sim.db();
    let id = db.create_customer(body)?;
    created(db.href(&["customers", &id]))
}

async fn read_customer(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().read_customer(&id)?)
}

async fn update_customer(
    State(sim): Shared,
    Path(id): Path<String>,
    DwollaJson(body): DwollaJson<CustomerUpdate>,
) -> Reply {
    ok(&sim.db().update_customer(&id, body)?)
}

async fn list_customers(State(sim): Shared, Query(query): Query<CustomerQuery>) -> Reply {
    let db = sim.db();
    let paging = PageQuery { limit: query.limit, offset: query.offset };
    page(db.href(&["customers"]), "customers", db.search_customers(&query), paging)
}

async fn create_iav_token(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().iav_token(&id)?)
}

async fn list_customer_transfers(State(sim): Shared, Path(id): Path<String>, Query(query): Query<PageQuery>) -> Reply {
    let db = sim.db();
    page(db.href(&["customers", &id, "transfers"]), "transfers", db.customer_transfers(&id)?, query)
}

// ---------------------------------------------------------------------------
// Funding sources and micro-deposits

async fn create_funding_source(
    State(sim): Shared,
    Path(id): Path<String>,
    DwollaJson(body): DwollaJson<NewFundingSource>,
) -> Reply {
    let mut db = sim.db();
    let source = db.create_source(&id, body)?;
    created(db.href(&["funding-sources", &source]))
}

async fn list_customer_funding_sources(
    State(sim): Shared,
    Path(id): Path<String>,
    Query(query): Query<FundingSourceQuery>,
) -> Reply {
    let db = sim.db();
    all(db.href(&["customers", &id, "funding-sources"]), "funding-sources", db.customer_sources(&id, query.removed)?)
}

async fn read_funding_source(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().read_source(&id)?)
}

async fn update_funding_source(
    State(sim): Shared,
    Path(id): Path<String>,
    DwollaJson(body): DwollaJson<FundingSourceUpdate>,
) -> Reply {
    ok(&sim.db().update_source(&id, body)?)
}

/// The pre-June-2016 removal, still sent by the 2016 Donkies.
async fn remove_funding_source(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().remove_source(&id)?)
}

async fn read_balance(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().balance(&id)?)
}

async fn read_micro_deposits(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().micro_deposits(&id)?)
}

/// No body initiates the deposits; amounts verify them.
async fn post_micro_deposits(State(sim): Shared, Path(id): Path<String>, body: Bytes) -> Reply {
    let blank = body.iter().all(u8::is_ascii_whitespace) || body.as_ref() == b"{}";
    if blank {
        let location = sim.db().initiate_micro_deposits(&id)?;
        return created(location);
    }
    let amounts: VerifyMicroDeposits = serde_json::from_slice(&body).map_err(|_| ApiError::bad_request())?;
    sim.db().verify_micro_deposits(&id, amounts)?;
    Ok(StatusCode::OK.into_response())
}

// ---------------------------------------------------------------------------
// Transfers

async fn create_transfer(State(sim): Shared, DwollaJson(body): DwollaJson<NewTransfer>) -> Reply {
    let mut db = sim.db();
    let id = db.create_transfer(body)?;
    created(db.href(&["transfers", &id]))
}

async fn read_transfer(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().read_transfer(&id)?)
}

async fn update_transfer(
    State(sim): Shared,
    Path(id): Path<String>,
    DwollaJson(body): DwollaJson<TransferUpdate>,
) -> Reply {
    ok(&sim.db().update_transfer(&id, body)?)
}

async fn read_transfer_failure(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().transfer_failure(&id)?)
}

async fn simulate(State(sim): Shared) -> Reply {
    let total = sim.simulate().await.map_err(|e| {
        tracing::error!("dwolla simulator: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "ServerError", "A server error occurred.")
    })?;
    let href = sim.db().href(&["sandbox-simulations"]);
    ok(&SandboxSimulation { links: Links::from([("self".to_owned(), Link::typed(href, "sandbox-simulation"))]), total })
}

// ---------------------------------------------------------------------------
// Webhook subscriptions and events

async fn create_subscription(State(sim): Shared, DwollaJson(body): DwollaJson<NewWebhookSubscription>) -> Reply {
    let mut db = sim.db();
    let id = db.create_subscription(body)?;
    created(db.href(&["webhook-subscriptions", &id]))
}

async fn list_subscriptions(State(sim): Shared) -> Reply {
    let db = sim.db();
    all(db.href(&["webhook-subscriptions"]), "webhook-subscriptions", db.list_subscriptions())
}

async fn read_subscription(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().read_subscription(&id)?)
}

async fn pause_subscription(
    State(sim): Shared,
    Path(id): Path<String>,
    DwollaJson(body): DwollaJson<WebhookSubscriptionUpdate>,
) -> Reply {
    ok(&sim.db().pause_subscription(&id, body.paused)?)
}

async fn delete_subscription(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().delete_subscription(&id)?)
}

async fn list_events(State(sim): Shared, Query(query): Query<PageQuery>) -> Reply {
    let db = sim.db();
    page(db.href(&["events"]), "events", db.list_events(), query)
}

async fn read_event(State(sim): Shared, Path(id): Path<String>) -> Reply {
    ok(&sim.db().read_event(&id)?)
}

// ---------------------------------------------------------------------------
// Control endpoints

async fn read_faults(State(sim): Shared) -> axum::Json<Faults> {
    axum::Json(sim.faults.current())
}

/// The counters of [`super::DwollaSimHandle`], for a simulator in another process.
async fn read_stats(State(sim): Shared) -> axum::Json<DwollaSimStats> {
    axum::Json(DwollaSimStats {
        token_requests: sim.token_requests.load(Ordering::Relaxed),
        rejected_tokens: sim.rejected_tokens.load(Ordering::Relaxed),
        webhook_attempts: sim.webhook_attempts.load(Ordering::Relaxed),
    })
}

async fn replace_faults(State(sim): Shared, DwollaJson(faults): DwollaJson<Faults>) -> Reply {
    faults.validate().map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message))?;
    sim.faults.replace(faults.clone());
    Ok(axum::Json(faults).into_response())
}

/// What the user does in Dwolla's hosted IAV; the body is optional.
async fn complete_iav(State(sim): Shared, Path(token): Path<String>, body: Bytes) -> Reply {
    let login = if body.iter().all(u8::is_ascii_whitespace) {
        IavBankLogin::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request())?
    };
    let completion = sim.db().complete_iav(&token, login)?;
    if let Err(e) = sim.flush().await {
        return Ok(unsaved(&e));
    }
    ok(&completion)
}
