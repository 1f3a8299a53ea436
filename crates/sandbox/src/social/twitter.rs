//! The Sign in with Twitter simulator: the OAuth 1.0a three legs and
//! `account/verify_credentials`, every API request checked for a valid
//! HMAC-SHA1 signature ([`donkies_social::oauth1::verify`]), a known
//! consumer key, a fresh timestamp and an unused nonce.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use donkies_social::TwitterConfig;
use donkies_social::oauth1::{self, OAuthParams};
use donkies_social::twitter::wire::{
    AccessTokenResponse, AuthenticateQuery, COULD_NOT_AUTHENTICATE, ErrorsBody, INVALID_OR_EXPIRED_TOKEN,
    OVER_CAPACITY, RequestTokenResponse, TIMESTAMP_OUT_OF_BOUNDS, User, VerifyCredentialsQuery,
};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{
    DEFAULT_CODE_TTL, DEFAULT_TEST_USER, OutageBody, SANDBOX_TWITTER_CONSUMER_KEY, SANDBOX_TWITTER_CONSUMER_SECRET,
    Served, TestUser, lock, outage_status, random_token, redirect_target,
};

/// Code 215: "Bad Authentication data." (no usable Authorization header).
const BAD_AUTHENTICATION_DATA: i64 = 215;

/// How the Twitter simulator starts.
#[derive(Clone)]
pub struct TwitterSimConfig {
    pub consumer_key: String,
    pub consumer_secret: String,
    /// How far `oauth_timestamp` may be from the simulator's clock.
    pub timestamp_window: Duration,
    /// How long a request token waits to be approved and traded.
    pub request_token_ttl: Duration,
    /// Whether this app may see users' email addresses (Twitter grants it
    /// per app).
    pub shares_email: bool,
}

impl Default for TwitterSimConfig {
    fn default() -> Self {
        Self {
            consumer_key: SANDBOX_TWITTER_CONSUMER_KEY.to_owned(),
            consumer_secret: SANDBOX_TWITTER_CONSUMER_SECRET.to_owned(),
            timestamp_window: Duration::from_secs(300),
            request_token_ttl: DEFAULT_CODE_TTL,
            shares_email: true,
        }
    }
}

impl fmt::Debug for TwitterSimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwitterSimConfig")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"***")
            .field("timestamp_window", &self.timestamp_window)
            .field("request_token_ttl", &self.request_token_ttl)
            .field("shares_email", &self.shares_email)
            .finish()
    }
}

#[derive(Debug)]
struct RequestGrant {
    secret: String,
    callback: String,
    expires_at: Instant,
    /// The verifier and the user, once approved.
    approved: Option<(String, TestUser)>,
}

#[derive(Debug)]
struct AccessGrant {
    secret: String,
    user: TestUser,
}

#[derive(Debug)]
struct TwitterState {
    config: TwitterSimConfig,
    outage: Mutex<Option<u16>>,
    request_tokens: Mutex<HashMap<String, RequestGrant>>,
    access_tokens: Mutex<HashMap<String, AccessGrant>>,
    /// Nonces seen within the timestamp window, with their timestamps.
    nonces: Mutex<HashMap<String, u64>>,
}

/// The simulator's state, for approving tokens and turning knobs in
/// process. Clones control the same simulator.
#[derive(Clone, Debug)]
pub struct TwitterSimHandle {
    state: Arc<TwitterState>,
}

impl TwitterSimHandle {
    pub fn new(config: TwitterSimConfig) -> Self {
        Self {
            state: Arc::new(TwitterState {
                config,
                outage: Mutex::default(),
                request_tokens: Mutex::default(),
                access_tokens: Mutex::default(),
                nonces: Mutex::default(),
            }),
        }
    }

    /// The app serving this simulator, to run or to nest in another router.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// `user` approves the request token: returns the `oauth_verifier` the
    /// browser would bring back to the callback, or `None` for an unknown
    /// or expired token.
    pub fn authorize(&self, oauth_token: &str, user: TestUser) -> Option<String> {
        approve(&self.state, oauth_token, user).map(|(verifier, _)| verifier)
    }

    /// Every provider route answers `status` (a 5xx) until set to `None`.
    pub fn set_outage(&self, status: Option<u16>) {
        *lock(&self.state.outage) = status;
    }
}

/// A Twitter simulator serving on a TCP port until shut down or dropped.
#[derive(Debug)]
pub struct TwitterSim {
    served: Served,
    handle: TwitterSimHandle,
}

impl TwitterSim {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn start(addr: SocketAddr, config: TwitterSimConfig) -> io::Result<Self> {
        let handle = TwitterSimHandle::new(config);
        let served = Served::start(addr, handle.router(), "twitter").await?;
        Ok(Self { served, handle })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.served.local_addr()
    }

    /// `http://<addr>/`: the API base URL.
    pub fn base_url(&self) -> Url {
        self.served.base_url()
    }

    /// A client config for this simulator with its consumer credentials.
    pub fn client_config(&self) -> TwitterConfig {
        let config = &self.handle.state.config;
        TwitterConfig::new(config.consumer_key.clone(), config.consumer_secret.as_str()).with_base_url(self.base_url())
    }

    pub fn handle(&self) -> &TwitterSimHandle {
        &self.handle
    }

    /// See [`TwitterSimHandle::authorize`].
    pub fn authorize(&self, oauth_token: &str, user: TestUser) -> Option<String> {
        self.handle.authorize(oauth_token, user)
    }

    /// See [`TwitterSimHandle::set_outage`].
    pub fn set_outage(&self, status: Option<u16>) {
        self.handle.set_outage(status);
    }

    /// Stops accepting connections and waits (a few seconds at most) for
    /// the requests in flight.
    pub async fn shutdown(self) -> io::Result<()> {
        self.served.shutdown().await
    }
}

type Shared = State<Arc<TwitterState>>;

fn router(state: Arc<TwitterState>) -> Router {
    let api = Router::new()
        .route("/oauth/request_token", post(request_token))
        .route("/oauth/authenticate", get(open_authorize))
        .route("/oauth/authorize", get(open_authorize))
        .route("/oauth/access_token", post(access_token))
        .route("/1.1/account/verify_credentials.json", get(verify_credentials))
        .layer(middleware::from_fn_with_state(state.clone(), outage));
    Router::new().route("/__sim/outage", post(set_outage)).merge(api).with_state(state)
}

/// A Twitter API error: its status and `{"errors": [{"code", "message"}]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ApiError {
    status: StatusCode,
    code: i64,
    message: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorsBody::new(self.code, self.message))).into_response()
    }
}

const fn api_error(status: StatusCode, code: i64, message: &'static str) -> ApiError {
    ApiError { status, code, message }
}

const COULD_NOT_AUTHENTICATE_YOU: ApiError =
    api_error(StatusCode::UNAUTHORIZED, COULD_NOT_AUTHENTICATE, "Could not authenticate you.");

const INVALID_TOKEN: ApiError =
    api_error(StatusCode::UNAUTHORIZED, INVALID_OR_EXPIRED_TOKEN, "Invalid or expired token.");

/// A form-encoded answer, as the `oauth/` endpoints give.
fn form_reply<T: Serialize>(body: &T) -> Response {
    match serde_urlencoded::to_string(body) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/x-www-form-urlencoded")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn outage(State(sim): Shared, request: Request, next: Next) -> Response {
    match outage_status(&sim.outage) {
        Some(status) => api_error(status, OVER_CAPACITY, "Over capacity").into_response(),
        None => next.run(request).await,
    }
}

async fn set_outage(State(sim): Shared, Json(body): Json<OutageBody>) -> StatusCode {
    *lock(&sim.outage) = body.status;
    StatusCode::NO_CONTENT
}

/// A request as the signature sees it.
struct Signed {
    method: Method,
    url: Url,
    form: Vec<(String, String)>,
    oauth: OAuthParams,
}

impl Signed {
    /// Reads the `Authorization: OAuth` header, the URL the client signed
    /// (`http://` + `Host` + the path and query as sent) and a form body.
    fn read(method: Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Self, ApiError> {
        let Some(authorization) = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()) else {
            return Err(api_error(StatusCode::BAD_REQUEST, BAD_AUTHENTICATION_DATA, "Bad Authentication data."));
        };
        let oauth = OAuthParams::parse_header(authorization).map_err(|_| COULD_NOT_AUTHENTICATE_YOU)?;
        let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or("localhost");
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let url = Url::parse(&format!("http://{host}{path_and_query}")).map_err(|_| COULD_NOT_AUTHENTICATE_YOU)?;
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        let form = if is_form { url::form_urlencoded::parse(body).into_owned().collect() } else { Vec::new() };
        Ok(Self { method, url, form, oauth })
    }

    /// A parameter from the header, the form or the query.
    fn param(&self, name: &str) -> Option<String> {
        self.oauth
            .get(name)
            .map(str::to_owned)
            .or_else(|| self.form.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()))
            .or_else(|| self.url.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned()))
    }

    /// Checks the consumer key, the timestamp, the signature (with
    /// `token_secret`) and the nonce, as Twitter does.
    fn authenticate(&self, sim: &TwitterState, token_secret: &str) -> Result<(), ApiError> {
        if self.oauth.consumer_key() != Some(sim.config.consumer_key.as_str()) {
            return Err(COULD_NOT_AUTHENTICATE_YOU);
        }
        let now = oauth1::timestamp();
        let window = sim.config.timestamp_window.as_secs();
        let Some(timestamp) = self.oauth.timestamp() else {
            return Err(COULD_NOT_AUTHENTICATE_YOU);
        };
        if timestamp.abs_diff(now) > window {
            return Err(api_error(StatusCode::UNAUTHORIZED, TIMESTAMP_OUT_OF_BOUNDS, "Timestamp out of bounds."));
        }
        let request = oauth1::Request { method: self.method.as_str(), url: &self.url, form: &self.form };
        if !oauth1::verify(&request, &self.oauth, &sim.config.consumer_secret, token_secret) {
            return Err(COULD_NOT_AUTHENTICATE_YOU);
        }
        let Some(nonce) = self.oauth.nonce().filter(|nonce| !nonce.is_empty()) else {
            return Err(COULD_NOT_AUTHENTICATE_YOU);
        };
        let mut nonces = lock(&sim.nonces);
        nonces.retain(|_, seen| seen.abs_diff(now) <= window);
        let key = format!("{}:{timestamp}:{nonce}", sim.config.consumer_key);
        if nonces.insert(key, timestamp).is_some() {
            return Err(COULD_NOT_AUTHENTICATE_YOU);
        }
        Ok(())
    }
}

async fn request_token(
    State(sim): Shared,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = match Signed::read(method, &uri, &headers, &body) {
        Ok(signed) => signed,
        Err(error) => return error.into_response(),
    };
    if let Err(error) = signed.authenticate(&sim, "") {
        return error.into_response();
    }
    let Some(callback) = signed.param("oauth_callback").filter(|c| !c.is_empty()) else {
        return api_error(StatusCode::BAD_REQUEST, COULD_NOT_AUTHENTICATE, "oauth_callback is required (OAuth 1.0a).")
            .into_response();
    };
    let token = random_token(27);
    let secret = random_token(32);
    {
        let now = Instant::now();
        let mut tokens = lock(&sim.request_tokens);
        tokens.retain(|_, grant| grant.expires_at > now);
        tokens.insert(
            token.clone(),
            RequestGrant {
                secret: secret.clone(),
                callback,
                expires_at: now + sim.config.request_token_ttl,
                approved: None,
            },
        );
    }
    form_reply(&RequestTokenResponse {
        oauth_token: token,
        oauth_token_secret: secret,
        oauth_callback_confirmed: "true".to_owned(),
    })
}

/// Approves `oauth_token` for `user`: its new verifier and the callback.
fn approve(sim: &TwitterState, oauth_token: &str, user: TestUser) -> Option<(String, String)> {
    let mut tokens = lock(&sim.request_tokens);
    let grant = tokens.get_mut(oauth_token).filter(|grant| grant.expires_at > Instant::now())?;
    let verifier = random_token(32);
    grant.approved = Some((verifier.clone(), user));
    Some((verifier, grant.callback.clone()))
}

#[derive(Deserialize)]
struct AuthorizeParams {
    #[serde(flatten)]
    authenticate: AuthenticateQuery,
    /// Which [`TestUser::named`] approves.
    user: Option<String>,
}

/// The approval page, approved at once by the named test user.
async fn open_authorize(State(sim): Shared, query: Result<Query<AuthorizeParams>, QueryRejection>) -> Response {
    let Ok(Query(params)) = query else {
        return (StatusCode::BAD_REQUEST, "oauth_token is required").into_response();
    };
    let token = params.authenticate.oauth_token;
    let user = TestUser::named(params.user.as_deref().unwrap_or(DEFAULT_TEST_USER));
    let Some((verifier, callback)) = approve(&sim, &token, user) else {
        return (
            StatusCode::BAD_REQUEST,
            "This page is no longer valid: the request token is unknown, expired or used.",
        )
            .into_response();
    };
    if callback == "oob" {
        return format!("PIN: {verifier}").into_response();
    }
    let pairs = [("oauth_token", token.as_str()), ("oauth_verifier", verifier.as_str())];
    match redirect_target(&callback, &pairs) {
        Some(target) => Redirect::to(target.as_str()).into_response(),
        None => (StatusCode::BAD_REQUEST, "the callback is not a valid URL").into_response(),
    }
}

async fn access_token(
    State(sim): Shared,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = match Signed::read(method, &uri, &headers, &body) {
        Ok(signed) => signed,
        Err(error) => return error.into_response(),
    };
    let Some(token) = signed.oauth.token().map(str::to_owned) else {
        return INVALID_TOKEN.into_response();
    };
    let secret = {
        let tokens = lock(&sim.request_tokens);
        match tokens.get(&token).filter(|grant| grant.expires_at > Instant::now()) {
            Some(grant) => grant.secret.clone(),
            None => return INVALID_TOKEN.into_response(),
        }
    };
    if let Err(error) = signed.authenticate(&sim, &secret) {
        return error.into_response();
    }
    let verifier = signed.param("oauth_verifier").unwrap_or_default();
    let user = {
        let mut tokens = lock(&sim.request_tokens);
        let verified = tokens
            .get(&token)
            .and_then(|grant| grant.approved.as_ref())
            .is_some_and(|(expected, _)| !verifier.is_empty() && *expected == verifier);
        if !verified {
            return (StatusCode::UNAUTHORIZED, "Error processing your OAuth request: Invalid oauth_verifier parameter")
                .into_response();
        }
        // A request token is traded once.
        match tokens.remove(&token).and_then(|grant| grant.approved) {
            Some((_, user)) => user,
            None => return INVALID_TOKEN.into_response(),
        }
    };
    let access_token = format!("{}-{}", user.id, random_token(40));
    let access_secret = random_token(45);
    lock(&sim.access_tokens)
        .insert(access_token.clone(), AccessGrant { secret: access_secret.clone(), user: user.clone() });
    form_reply(&AccessTokenResponse {
        oauth_token: access_token,
        oauth_token_secret: access_secret,
        user_id: user.id.clone(),
        screen_name: user.screen_name(),
    })
}

async fn verify_credentials(
    State(sim): Shared,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    query: Result<Query<VerifyCredentialsQuery>, QueryRejection>,
) -> Response {
    let signed = match Signed::read(method, &uri, &headers, &[]) {
        Ok(signed) => signed,
        Err(error) => return error.into_response(),
    };
    let Some(token) = signed.oauth.token() else {
        return COULD_NOT_AUTHENTICATE_YOU.into_response();
    };
    let (secret, user) = match lock(&sim.access_tokens).get(token) {
        Some(grant) => (grant.secret.clone(), grant.user.clone()),
        None => return INVALID_TOKEN.into_response(),
    };
    if let Err(error) = signed.authenticate(&sim, &secret) {
        return error.into_response();
    }
    let include_email = query.ok().and_then(|Query(query)| query.include_email).unwrap_or(false);
    Json(User {
        id: user.id.parse().ok(),
        id_str: user.id.clone(),
        name: user.full_name(),
        screen_name: user.screen_name(),
        email: user.email.clone().filter(|_| include_email && sim.config.shares_email),
    })
    .into_response()
}
