//! The Facebook Login simulator: the dialog, the code exchange and `/me`.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use donkies_social::FacebookConfig;
use donkies_social::facebook::wire::{
    AccessTokenQuery, AccessTokenResponse, DialogQuery, ErrorBody, FacebookProfile, ProfileQuery,
};
use serde::Deserialize;
use url::Url;

use super::{
    CodeError, Codes, DEFAULT_CODE_TTL, DEFAULT_TEST_USER, OutageBody, SANDBOX_FACEBOOK_APP_ID,
    SANDBOX_FACEBOOK_APP_SECRET, Served, TestUser, lock, outage_status, random_token, redirect_target,
};

/// Lifetime the simulator announces for access tokens (about 60 days).
const TOKEN_EXPIRES_IN: u64 = 5_183_944;

/// How the Facebook simulator starts.
#[derive(Clone)]
pub struct FacebookSimConfig {
    pub app_id: String,
    pub app_secret: String,
    /// How long a code stays redeemable.
    pub code_ttl: Duration,
}

impl Default for FacebookSimConfig {
    fn default() -> Self {
        Self {
            app_id: SANDBOX_FACEBOOK_APP_ID.to_owned(),
            app_secret: SANDBOX_FACEBOOK_APP_SECRET.to_owned(),
            code_ttl: DEFAULT_CODE_TTL,
        }
    }
}

impl fmt::Debug for FacebookSimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FacebookSimConfig")
            .field("app_id", &self.app_id)
            .field("app_secret", &"***")
            .field("code_ttl", &self.code_ttl)
            .finish()
    }
}

#[derive(Debug)]
struct FacebookState {
    config: FacebookSimConfig,
    outage: Mutex<Option<u16>>,
    codes: Mutex<Codes>,
    tokens: Mutex<HashMap<String, TestUser>>,
}

/// The simulator's state, for minting codes and turning knobs in process.
/// Clones control the same simulator.
#[derive(Clone, Debug)]
pub struct FacebookSimHandle {
    state: Arc<FacebookState>,
}

impl FacebookSimHandle {
    pub fn new(config: FacebookSimConfig) -> Self {
        Self {
            state: Arc::new(FacebookState {
                config,
                outage: Mutex::default(),
                codes: Mutex::default(),
                tokens: Mutex::default(),
            }),
        }
    }

    /// The app serving this simulator, to run or to nest in another router.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// A code the dialog would have given `user`, redeemable once with any
    /// `redirect_uri`.
    pub fn issue_code(&self, user: TestUser) -> String {
        lock(&self.state.codes).issue(user, None, self.state.config.code_ttl)
    }

    /// A code redeemable once, only with this `redirect_uri` (as the real
    /// dialog's codes are).
    pub fn issue_code_for(&self, user: TestUser, redirect_uri: &str) -> String {
        lock(&self.state.codes).issue(user, Some(redirect_uri.to_owned()), self.state.config.code_ttl)
    }

    /// Every provider route answers `status` (a 5xx) until set to `None`.
    pub fn set_outage(&self, status: Option<u16>) {
        *lock(&self.state.outage) = status;
    }
}

/// A Facebook simulator serving on a TCP port until shut down or dropped.
#[derive(Debug)]
pub struct FacebookSim {
    served: Served,
    handle: FacebookSimHandle,
}

impl FacebookSim {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn start(addr: SocketAddr, config: FacebookSimConfig) -> io::Result<Self> {
        let handle = FacebookSimHandle::new(config);
        let served = Served::start(addr, handle.router(), "facebook").await?;
        Ok(Self { served, handle })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.served.local_addr()
    }

    /// `http://<addr>/`: both the Graph API and the dialog base URL.
    pub fn base_url(&self) -> Url {
        self.served.base_url()
    }

    /// A client config for this simulator with its app credentials.
    pub fn client_config(&self) -> FacebookConfig {
        let config = &self.handle.state.config;
        FacebookConfig::new(config.app_id.clone(), config.app_secret.as_str()).with_base_url(self.base_url())
    }

    pub fn handle(&self) -> &FacebookSimHandle {
        &self.handle
    }

    /// See [`FacebookSimHandle::issue_code`].
    pub fn issue_code(&self, user: TestUser) -> String {
        self.handle.issue_code(user)
    }

    /// See [`FacebookSimHandle::issue_code_for`].
    pub fn issue_code_for(&self, user: TestUser, redirect_uri: &str) -> String {
        self.handle.issue_code_for(user, redirect_uri)
    }

    /// See [`FacebookSimHandle::set_outage`].
    pub fn set_outage(&self, status: Option<u16>) {
        self.handle.set_outage(status);
    }

    /// Stops accepting connections and waits (a few seconds at most) for
    /// the requests in flight.
    pub async fn shutdown(self) -> io::Result<()> {
        self.served.shutdown().await
    }
}

type Shared = State<Arc<FacebookState>>;

fn router(state: Arc<FacebookState>) -> Router {
    let api = Router::new()
        .route("/{version}/dialog/oauth", get(open_dialog))
        .route("/{version}/oauth/access_token", get(exchange_code))
        .route("/{version}/me", get(read_me))
        .layer(middleware::from_fn_with_state(state.clone(), outage));
    Router::new().route("/__sim/outage", post(set_outage)).merge(api).with_state(state)
}

/// Facebook's error answer: status and `{"error": {…}}`.
fn graph_error(status: StatusCode, code: i64, message: &str) -> Response {
    (status, Json(ErrorBody::oauth(code, message))).into_response()
}

async fn outage(State(sim): Shared, request: Request, next: Next) -> Response {
    match outage_status(&sim.outage) {
        Some(status) => graph_error(status, 2, "Service temporarily unavailable"),
        None => next.run(request).await,
    }
}

async fn set_outage(State(sim): Shared, Json(body): Json<OutageBody>) -> StatusCode {
    *lock(&sim.outage) = body.status;
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct DialogParams {
    #[serde(flatten)]
    dialog: DialogQuery,
    /// Which [`TestUser::named`] approves.
    user: Option<String>,
}

/// The login dialog, approved at once by the named test user.
async fn open_dialog(State(sim): Shared, query: Result<Query<DialogParams>, QueryRejection>) -> Response {
    let Ok(Query(params)) = query else {
        return graph_error(StatusCode::BAD_REQUEST, 191, "client_id and redirect_uri are required");
    };
    let dialog = params.dialog;
    if dialog.client_id != sim.config.app_id {
        return graph_error(StatusCode::BAD_REQUEST, 101, "Invalid application ID.");
    }
    let user = TestUser::named(params.user.as_deref().unwrap_or(DEFAULT_TEST_USER));
    let code = lock(&sim.codes).issue(user, Some(dialog.redirect_uri.clone()), sim.config.code_ttl);
    let mut back = vec![("code", code.as_str())];
    if let Some(state) = dialog.state.as_deref() {
        back.push(("state", state));
    }
    match redirect_target(&dialog.redirect_uri, &back) {
        Some(target) => Redirect::to(target.as_str()).into_response(),
        None => graph_error(StatusCode::BAD_REQUEST, 191, "redirect_uri is not a valid URL"),
    }
}

async fn exchange_code(State(sim): Shared, query: Result<Query<AccessTokenQuery>, QueryRejection>) -> Response {
    let Ok(Query(query)) = query else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Missing client_id, redirect_uri, client_secret or code parameter.",
        );
    };
    if query.client_id != sim.config.app_id {
        return graph_error(StatusCode::BAD_REQUEST, 101, "Error validating application. Invalid application ID.");
    }
    if query.client_secret != sim.config.app_secret {
        return graph_error(StatusCode::BAD_REQUEST, 1, "Error validating client secret.");
    }
    let redeemed = lock(&sim.codes).redeem(&query.code, &query.redirect_uri);
    let user = match redeemed {
        Ok(user) => user,
        Err(CodeError::Unknown) => {
            return graph_error(StatusCode::BAD_REQUEST, 100, "Invalid verification code format.");
        }
        Err(CodeError::Redeemed) => {
            return graph_error(StatusCode::BAD_REQUEST, 100, "This authorization code has been used.");
        }
        Err(CodeError::Expired) => {
            return graph_error(StatusCode::BAD_REQUEST, 100, "This authorization code has expired.");
        }
        Err(CodeError::RedirectMismatch) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                100,
                "Error validating verification code. Please make sure your redirect_uri is \
                 identical to the one you used in the OAuth dialog request",
            );
        }
    };
    let access_token = format!("EAA{}", random_token(60));
    lock(&sim.tokens).insert(access_token.clone(), user);
    Json(AccessTokenResponse {
        access_token,
        token_type: Some("bearer".to_owned()),
        expires_in: Some(TOKEN_EXPIRES_IN),
    })
    .into_response()
}

async fn read_me(State(sim): Shared, query: Result<Query<ProfileQuery>, QueryRejection>) -> Response {
    let query = query.ok().map(|Query(query)| query);
    let Some(token) = query.as_ref().and_then(|q| q.access_token.as_deref()) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            2500,
            "An active access token must be used to query information about the current user.",
        );
    };
    let Some(user) = lock(&sim.tokens).get(token).cloned() else {
        return graph_error(StatusCode::BAD_REQUEST, 190, "Invalid OAuth access token.");
    };
    let fields = query.as_ref().and_then(|q| q.fields.as_deref()).unwrap_or("id,name");
    let asked = |field: &str| fields.split(',').any(|f| f.trim() == field);
    Json(FacebookProfile {
        id: user.id.clone(),
        email: user.email.clone().filter(|_| asked("email")),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
    })
    .into_response()
}
