//! The HTTP API: one router per resource, merged at the root, with the edge behaviour every
//! route shares (CORS, OPTIONS, body limit, request log, JSON 404/405).

pub mod accounts;
pub mod auth;
pub mod docs;
pub mod error;
pub mod extract;
pub mod input;
pub mod members;
pub mod metrics;
pub mod money;
pub mod ops;
pub mod page;
pub mod payments;
pub mod rendered;
pub mod sessions;
pub mod social;
pub mod users;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::broadcast;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::SizeAbove;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::cache::ReadCache;
use crate::config::{MetricsEndpoint, Settings};
use crate::services::{Change, Services};
use error::ApiError;

pub const BODY_LIMIT: usize = 1024 * 1024;
/// Smaller responses are sent as they are: gzip cannot save a round trip on them.
const COMPRESS_FROM: u16 = 4096;

#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

/// What only the HTTP edge keeps: caches of checked sessions and rendered reads, the wake-ups
/// of `?wait=` requests, rate limits; and the services every handler calls.
pub struct AppInner {
    pub services: Services,
    /// The server's settings (rate limits, caches, metrics, the webhook secret).
    pub settings: Arc<Settings>,
    pub limits: RateLimits,
    pub sessions: sessions::SessionCache,
    /// Member ids whose stored state just changed (wakes `?wait=` requests in this process).
    pub member_events: broadcast::Sender<i64>,
    /// Rendered member reads by `user id/identifier`, with the member id they show.
    pub member_reads: ReadCache<(i64, Bytes)>,
    /// Rendered reads by user, route and query (the transaction list and every page's reads).
    pub bodies: rendered::RenderedBodies,
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// Handlers that need only the services (the scrape) take them as their state.
impl axum::extract::FromRef<AppState> for Services {
    fn from_ref(state: &AppState) -> Services {
        state.services.clone()
    }
}

impl AppState {
    pub fn new(services: Services, settings: Arc<Settings>) -> AppState {
        if settings.metrics != MetricsEndpoint::Off {
            // Record from the first request on.
            metrics::handle();
        }
        let limits = RateLimits::new(settings.login_rate_per_minute, settings.reset_rate_per_hour);
        let sessions = sessions::SessionCache::new(&services.store, settings.cache_ttl);
        let member_reads = ReadCache::new(settings.cache_ttl);
        let bodies = rendered::RenderedBodies::new(settings.cache_ttl);
        let (member_events, _) = broadcast::channel(1024);
        let state =
            AppState(Arc::new(AppInner { services, settings, limits, sessions, member_events, member_reads, bodies }));
        // A change committed in any process reaches the caches and waiting requests at once.
        let weak = Arc::downgrade(&state.0);
        state.services.store.changes.listen(move |change| {
            let Some(state) = weak.upgrade() else { return };
            match change {
                Change::User(id) => {
                    state.sessions.forget_user(*id);
                    state.bodies.forget_user(*id);
                }
                Change::Transactions(user_id) => state.bodies.forget_user(*user_id),
                Change::Member { id, user_id } => {
                    let id = *id;
                    state.bodies.forget_user(*user_id);
                    state.member_reads.forget_where(move |(member, _)| *member == id);
                    let _ = state.member_events.send(id);
                }
                Change::Any => state.bodies.forget_all(),
                Change::Missed => {
                    state.sessions.forget_all();
                    state.bodies.forget_all();
                    state.member_reads.forget_where(|_| true);
                    let _ = state.member_events.send(ANY_MEMBER);
                }
            }
        });
        state
    }

    /// The answer to a GET of the user's `key` (the route and what else the body depends on):
    /// the kept body, or `render`ed and kept. Whatever changes what a kept body shows forgets
    /// it (see the change hook in [`AppState::new`]); a body older than half the cache's life
    /// is also rendered again in the background and replaced when it differs.
    pub async fn kept<F, Fut>(
        &self,
        user_id: i64,
        key: String,
        request: &axum::http::HeaderMap,
        render: F,
    ) -> Result<Response, ApiError>
    where
        F: FnOnce(AppState) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<u8>, ApiError>> + Send + 'static,
    {
        let store = &self.services.store;
        if !store.changes.is_live(&store.db) {
            // Another process's change might not be heard: read every time.
            return rendered::Rendered::new(render(self.clone()).await?).respond(request).await;
        }
        let state = self.clone();
        let body = self
            .bodies
            .get_or_render(user_id, format!("{user_id}/{key}"), move |known| async move {
                let body = rendered::Rendered::new(render(state).await?);
                Ok(if known == Some(body.version()) {
                    rendered::Loaded::Current
                } else {
                    rendered::Loaded::New { version: body.version(), body: Box::new(body) }
                })
            })
            .await?;
        body.respond(request).await
    }
}

/// Sent to waiting member reads when any member may have changed.
pub const ANY_MEMBER: i64 = 0;

/// Per-key request budgets (keys are `ip:…` and `email:…`). The attempts are counted in the
/// database, so that every process spends from one budget; each applies its own limit to it.
pub struct RateLimits {
    login_per_minute: u32,
    reset_per_hour: u32,
}

pub enum Limit {
    Login,
    PasswordReset,
}

impl RateLimits {
    fn new(login_per_minute: u32, reset_per_hour: u32) -> RateLimits {
        RateLimits { login_per_minute, reset_per_hour }
    }

    /// Spend one request of each key's budget; 429 with `Retry-After` when one is used up.
    pub async fn check(&self, services: &Services, limit: Limit, keys: &[String]) -> Result<(), ApiError> {
        let (name, allowed, window) = match limit {
            Limit::Login => ("login", self.login_per_minute, Duration::from_secs(60)),
            Limit::PasswordReset => ("password_reset", self.reset_per_hour, Duration::from_secs(3600)),
        };
        let keys: Vec<String> = keys.iter().map(|key| format!("{name}:{key}")).collect();
        let (attempts, window_end) = services.count_attempts(&keys, window).await?;
        if attempts <= i64::from(allowed) {
            return Ok(());
        }
        ::metrics::counter!("donkies_rate_limited_total", "limit" => name).increment(1);
        let wait = (window_end - donkies_store::now()).to_std().unwrap_or_default();
        Err(ApiError::TooManyRequests { retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) })
    }
}

#[derive(OpenApi)]
#[openapi(info(
    title = "Donkies API",
    version = "1",
    description = "Round-ups of card purchases, sent to the user's debts."
))]
struct ApiDoc;

/// The API router and its OpenAPI document, built from the same route list.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(members::router())
        .merge(accounts::router())
        .merge(social::router())
        .merge(payments::router())
        .merge(money::router())
        .split_for_parts();
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "token",
        utoipa::openapi::security::SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
            utoipa::openapi::security::ApiKeyValue::with_description(
                "Authorization",
                "`Token <key>`: in the Authorize box, type the word Token, a space, then the token from \
                 sign-in (`Bearer <key>` is accepted too).",
            ),
        )),
    );
    docs::document(&mut doc);
    (router, doc)
}

pub fn app(state: AppState) -> Router {
    let (router, doc) = routes();
    let doc = Arc::new(doc);
    let endpoint = state.settings.metrics;
    let mut router = router.merge(docs::router()).route(
        docs::OPENAPI_PATH,
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc.as_ref().clone()) }
        }),
    );
    if endpoint == MetricsEndpoint::Main {
        router = router.route("/metrics", axum::routing::get(metrics::render));
    }
    let mut router = router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|method: Method| async move { ApiError::MethodNotAllowed(method) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    if endpoint != MetricsEndpoint::Off {
        router = router.layer(middleware::from_fn(metrics::track));
    }
    router
        // Bodies of a few packets and more, for clients that take gzip; a body that is already
        // encoded (a kept transaction list) passes as it is.
        .layer(CompressionLayer::new().compress_when(SizeAbove::new(COMPRESS_FROM)))
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn(cors))
        .with_state(state)
}

const CORS_HEADERS: [(header::HeaderName, &str); 3] = [
    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    (header::ACCESS_CONTROL_ALLOW_HEADERS, "Authorization, Content-Type, Accept, Origin, X-Requested-With"),
    (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, PUT, PATCH, DELETE, OPTIONS"),
];

/// `/metrics` alone, for its own listener (`DONKIES_METRICS_LISTEN=ADDR`).
pub fn metrics_app(services: Services) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::render))
        .fallback(|| async { ApiError::NotFound })
        .with_state(services)
}

/// Front ends preflight every call: answer any OPTIONS with 200, and mark every response.
async fn cors(req: Request, next: Next) -> Response {
    let mut response = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut().insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        r
    } else {
        next.run(req).await
    };
    for (name, value) in CORS_HEADERS {
        response.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Log each request by its route pattern, never its concrete path or body (paths can carry
/// tokens; bodies carry passwords).
///
/// Every request has an id: the client's `X-Request-Id` when it sent a sane one, else a new
/// one. It is on every log line of the request, in the `X-Request-Id` answer header, and in
/// the body of a 500, so a user's report finds the log lines.
async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned());
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| crate::crypto::new_token()[..16].to_owned(), str::to_owned);
    let span = tracing::info_span!("request", id = %request_id);
    let mut response = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = response.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    let _entered = span.enter();
    if status >= 500 {
        tracing::error!(%method, route, status, micros, "request");
    } else {
        tracing::info!(%method, route, status, micros, "request");
    }
    if status == 500 {
        let body = serde_json::json!({ "detail": "Internal server error.", "request_id": request_id });
        response = (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

const REQUEST_ID: &str = "x-request-id";
