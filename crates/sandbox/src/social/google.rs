//! The Google Sign-In simulator: the consent screen, the token endpoint and
//! the signing keys. ID tokens are RS256 JWTs signed with an RSA key
//! generated when the simulator starts and published at `/oauth2/v3/certs`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use donkies_social::GoogleConfig;
use donkies_social::google::wire::{
    Audience, AuthQuery, ErrorBody, GRANT_TYPE_AUTHORIZATION_CODE, ID_TOKEN_ALG, IdTokenClaims, Jwk, Jwks, JwtHeader,
    TokenRequest, TokenResponse,
};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use super::{
    CodeError, Codes, DEFAULT_CODE_TTL, DEFAULT_TEST_USER, OutageBody, SANDBOX_GOOGLE_CLIENT_ID,
    SANDBOX_GOOGLE_CLIENT_SECRET, Served, TestUser, lock, outage_status, random_token, redirect_target,
};

const KEY_BITS: usize = 2048;
/// The scopes the simulator reports as granted.
const GRANTED_SCOPE: &str = "openid https://www.googleapis.com/auth/userinfo.email \
                             https://www.googleapis.com/auth/userinfo.profile";
/// `aud` of a token made with [`TokenFault::WrongAudience`].
pub const OTHER_AUDIENCE: &str = "someone-else.apps.googleusercontent.com";
/// `iss` of a token made with [`TokenFault::WrongIssuer`].
pub const OTHER_ISSUER: &str = "https://accounts.example.com";

/// How the next ID token is spoiled, so client tests can check that each
/// kind of bad token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// Signed with a key that is not published, under the published key's
    /// `kid`: the signature does not verify.
    WrongKey,
    /// Signed with a key that is not published, under its own `kid`.
    UnknownKey,
    /// `aud` is [`OTHER_AUDIENCE`].
    WrongAudience,
    /// `iss` is [`OTHER_ISSUER`].
    WrongIssuer,
    /// Issued two hours ago, expired one hour ago.
    Expired,
    /// The header says `HS256` (the signature is still a valid RS256 one, so
    /// only a check of `alg` refuses it).
    UnsupportedAlgorithm,
}

/// How the Google simulator starts.
#[derive(Clone)]
pub struct GoogleSimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `iss` of the ID tokens.
    pub issuer: String,
    /// How long a code stays redeemable.
    pub code_ttl: Duration,
    /// Lifetime of access and ID tokens.
    pub token_ttl: Duration,
}

impl Default for GoogleSimConfig {
    fn default() -> Self {
        Self {
            client_id: SANDBOX_GOOGLE_CLIENT_ID.to_owned(),
            client_secret: SANDBOX_GOOGLE_CLIENT_SECRET.to_owned(),
            issuer: GoogleConfig::DEFAULT_ISSUER.to_owned(),
            code_ttl: DEFAULT_CODE_TTL,
            token_ttl: Duration::from_secs(3600),
        }
    }
}

impl fmt::Debug for GoogleSimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleSimConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("issuer", &self.issuer)
            .field("code_ttl", &self.code_ttl)
            .field("token_ttl", &self.token_ttl)
            .finish()
    }
}

/// An RSA key pair the simulator signs with, and its public JWK.
struct SimKey {
    signing: SigningKey<Sha256>,
    jwk: Jwk,
}

impl fmt::Debug for SimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimKey").field("kid", &self.jwk.kid).finish_non_exhaustive()
    }
}

impl SimKey {
    /// Generates a 2048-bit key: CPU-heavy, call it off the runtime.
    fn generate() -> io::Result<Self> {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), KEY_BITS)
            .map_err(|e| io::Error::other(format!("could not generate an RSA key: {e}")))?;
        let n = private.n().to_bytes_be();
        let e = private.e().to_bytes_be();
        let kid: String = Sha256::digest(&n).iter().take(20).map(|byte| format!("{byte:02x}")).collect();
        Ok(Self {
            signing: SigningKey::<Sha256>::new(private),
            jwk: Jwk {
                kty: "RSA".to_owned(),
                alg: Some(ID_TOKEN_ALG.to_owned()),
                usage: Some("sig".to_owned()),
                kid,
                n: URL_SAFE_NO_PAD.encode(n),
                e: URL_SAFE_NO_PAD.encode(e),
            },
        })
    }

    fn kid(&self) -> &str {
        &self.jwk.kid
    }
}

async fn generate_keys(count: usize) -> io::Result<Vec<SimKey>> {
    tokio::task::spawn_blocking(move || (0..count).map(|_| SimKey::generate()).collect())
        .await
        .map_err(io::Error::other)?
}

#[derive(Debug)]
struct GoogleState {
    config: GoogleSimConfig,
    outage: Mutex<Option<u16>>,
    codes: Mutex<Codes>,
    /// Published keys, newest (the one signing) first.
    keys: Mutex<Vec<Arc<SimKey>>>,
    /// A key never published, for [`TokenFault::WrongKey`] and `UnknownKey`.
    rogue: Arc<SimKey>,
    next_fault: Mutex<Option<TokenFault>>,
    jwks_hits: AtomicUsize,
}

/// The simulator's state, for minting codes and turning knobs in process.
/// Clones control the same simulator.
#[derive(Clone, Debug)]
pub struct GoogleSimHandle {
    state: Arc<GoogleState>,
}

impl GoogleSimHandle {
    /// Generates the signing keys (off the async runtime) and builds the state.
    pub async fn new(config: GoogleSimConfig) -> io::Result<Self> {
        let mut keys = generate_keys(2).await?.into_iter().map(Arc::new);
        let (Some(signing), Some(rogue)) = (keys.next(), keys.next()) else {
            return Err(io::Error::other("key generation returned too few keys"));
        };
        Ok(Self {
            state: Arc::new(GoogleState {
                config,
                outage: Mutex::default(),
                codes: Mutex::default(),
                keys: Mutex::new(vec![signing]),
                rogue,
                next_fault: Mutex::default(),
                jwks_hits: AtomicUsize::new(0),
            }),
        })
    }

    /// The app serving this simulator, to run or to nest in another router.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// A code the consent screen would have given `user`, redeemable once
    /// with any `redirect_uri`.
    pub fn issue_code(&self, user: TestUser) -> String {
        lock(&self.state.codes).issue(user, None, self.state.config.code_ttl)
    }

    /// A code redeemable once, only with this `redirect_uri`.
    pub fn issue_code_for(&self, user: TestUser, redirect_uri: &str) -> String {
        lock(&self.state.codes).issue(user, Some(redirect_uri.to_owned()), self.state.config.code_ttl)
    }

    /// Spoils the next ID token the token endpoint issues (one token only).
    pub fn sign_next_token_with(&self, fault: TokenFault) {
        *lock(&self.state.next_fault) = Some(fault);
    }

    /// Every provider route (keys included) answers `status` (a 5xx) until
    /// set to `None`.
    pub fn set_outage(&self, status: Option<u16>) {
        *lock(&self.state.outage) = status;
    }

    /// How many times `/oauth2/v3/certs` was asked for (outages included).
    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    /// The `kid` new ID tokens are signed under.
    pub fn current_kid(&self) -> String {
        lock(&self.state.keys).first().map(|key| key.kid().to_owned()).unwrap_or_default()
    }

    /// Starts signing with a new key, published beside the previous one
    /// (as Google does during a rotation).
    pub async fn rotate_key(&self) -> io::Result<()> {
        let key = generate_keys(1).await?.pop().ok_or_else(|| io::Error::other("key generation returned no key"))?;
        let mut keys = lock(&self.state.keys);
        keys.insert(0, Arc::new(key));
        keys.truncate(2);
        Ok(())
    }
}

/// A Google simulator serving on a TCP port until shut down or dropped.
#[derive(Debug)]
pub struct GoogleSim {
    served: Served,
    handle: GoogleSimHandle,
}

impl GoogleSim {
    /// Generates its keys, binds `addr` (port 0 picks a free port) and
    /// starts serving.
    pub async fn start(addr: SocketAddr, config: GoogleSimConfig) -> io::Result<Self> {
        let handle = GoogleSimHandle::new(config).await?;
        let served = Served::start(addr, handle.router(), "google").await?;
        Ok(Self { served, handle })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.served.local_addr()
    }

    /// `http://<addr>/`; the endpoints are at Google's paths below it.
    pub fn base_url(&self) -> Url {
        self.served.base_url()
    }

    /// A client config for this simulator with its client credentials.
    pub fn client_config(&self) -> GoogleConfig {
        let config = &self.handle.state.config;
        let mut client =
            GoogleConfig::new(config.client_id.clone(), config.client_secret.as_str()).with_base_url(&self.base_url());
        client.issuer.clone_from(&config.issuer);
        client
    }

    pub fn handle(&self) -> &GoogleSimHandle {
        &self.handle
    }

    /// See [`GoogleSimHandle::issue_code`].
    pub fn issue_code(&self, user: TestUser) -> String {
        self.handle.issue_code(user)
    }

    /// See [`GoogleSimHandle::issue_code_for`].
    pub fn issue_code_for(&self, user: TestUser, redirect_uri: &str) -> String {
        self.handle.issue_code_for(user, redirect_uri)
    }

    /// See [`GoogleSimHandle::sign_next_token_with`].
    pub fn sign_next_token_with(&self, fault: TokenFault) {
        self.handle.sign_next_token_with(fault);
    }

    /// See [`GoogleSimHandle::set_outage`].
    pub fn set_outage(&self, status: Option<u16>) {
        self.handle.set_outage(status);
    }

    /// See [`GoogleSimHandle::jwks_hits`].
    pub fn jwks_hits(&self) -> usize {
        self.handle.jwks_hits()
    }

    /// See [`GoogleSimHandle::rotate_key`].
    pub async fn rotate_key(&self) -> io::Result<()> {
        self.handle.rotate_key().await
    }

    /// Stops accepting connections and waits (a few seconds at most) for
    /// the requests in flight.
    pub async fn shutdown(self) -> io::Result<()> {
        self.served.shutdown().await
    }
}

type Shared = State<Arc<GoogleState>>;

fn router(state: Arc<GoogleState>) -> Router {
    let api = Router::new()
        .route("/o/oauth2/v2/auth", get(open_consent))
        .route("/token", post(exchange_code))
        .route("/oauth2/v3/certs", get(read_keys))
        .layer(middleware::from_fn_with_state(state.clone(), outage));
    Router::new().route("/__sim/outage", post(set_outage)).merge(api).with_state(state)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(ErrorBody::new(error, description))).into_response()
}

async fn outage(State(sim): Shared, request: Request, next: Next) -> Response {
    if request.uri().path().ends_with("/certs") {
        sim.jwks_hits.fetch_add(1, Ordering::SeqCst);
    }
    match outage_status(&sim.outage) {
        Some(status) => (status, "Service Unavailable (simulated outage)").into_response(),
        None => next.run(request).await,
    }
}

async fn set_outage(State(sim): Shared, Json(body): Json<OutageBody>) -> StatusCode {
    *lock(&sim.outage) = body.status;
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct ConsentParams {
    #[serde(flatten)]
    auth: AuthQuery,
    /// Which [`TestUser::named`] consents.
    user: Option<String>,
}

/// The consent screen, approved at once by the named test user.
async fn open_consent(State(sim): Shared, query: Result<Query<ConsentParams>, QueryRejection>) -> Response {
    let Ok(Query(params)) = query else {
        return (
            StatusCode::BAD_REQUEST,
            "Error 400: invalid_request (client_id, redirect_uri, response_type and scope are required)",
        )
            .into_response();
    };
    let auth = params.auth;
    if auth.client_id != sim.config.client_id {
        return (StatusCode::UNAUTHORIZED, "Error 401: invalid_client (The OAuth client was not found.)")
            .into_response();
    }
    if auth.response_type != "code" {
        return (StatusCode::BAD_REQUEST, "Error 400: invalid_request (only response_type=code is supported)")
            .into_response();
    }
    let user = TestUser::named(params.user.as_deref().unwrap_or(DEFAULT_TEST_USER));
    let code = lock(&sim.codes).issue(user, Some(auth.redirect_uri.clone()), sim.config.code_ttl);
    let mut back = Vec::new();
    if let Some(state) = auth.state.as_deref() {
        back.push(("state", state));
    }
    back.push(("code", code.as_str()));
    back.push(("scope", auth.scope.as_str()));
    match redirect_target(&auth.redirect_uri, &back) {
        Some(target) => Redirect::to(target.as_str()).into_response(),
        None => (StatusCode::BAD_REQUEST, "Error 400: redirect_uri_mismatch (not a valid URL)").into_response(),
    }
}

async fn exchange_code(State(sim): Shared, body: Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<TokenRequest>(&body) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Could not read the form.");
    };
    if form.client_id != sim.config.client_id {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "The OAuth client was not found.");
    }
    if form.client_secret != sim.config.client_secret {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    }
    if form.grant_type != GRANT_TYPE_AUTHORIZATION_CODE {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {}", form.grant_type),
        );
    }
    if form.code.is_empty() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing required parameter: code");
    }
    let redeemed = lock(&sim.codes).redeem(&form.code, &form.redirect_uri);
    let user = match redeemed {
        Ok(user) => user,
        Err(CodeError::Unknown) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Malformed auth code.");
        }
        Err(CodeError::Redeemed) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Code was already redeemed.");
        }
        Err(CodeError::Expired) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Code has expired.");
        }
        Err(CodeError::RedirectMismatch) => {
            return oauth_error(StatusCode::BAD_REQUEST, "redirect_uri_mismatch", "Bad Request");
        }
    };

    let access_token = format!("ya29.{}", random_token(60));
    let fault = lock(&sim.next_fault).take();
    let signer = {
        let keys = lock(&sim.keys);
        match fault {
            Some(TokenFault::WrongKey) => TokenSigner {
                key: sim.rogue.clone(),
                kid: keys.first().map(|k| k.kid().to_owned()).unwrap_or_default(),
            },
            Some(TokenFault::UnknownKey) => TokenSigner { key: sim.rogue.clone(), kid: sim.rogue.kid().to_owned() },
            _ => match keys.first() {
                Some(key) => TokenSigner { key: key.clone(), kid: key.kid().to_owned() },
                None => {
                    return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "no signing key");
                }
            },
        }
    };
    let claims = claims(&sim.config, &user, &access_token, fault);
    let alg = if fault == Some(TokenFault::UnsupportedAlgorithm) { "HS256" } else { ID_TOKEN_ALG };
    let header = JwtHeader { alg: alg.to_owned(), kid: Some(signer.kid.clone()), typ: Some("JWT".to_owned()) };
    // RSA signing is CPU work: keep it off the async workers.
    let id_token = match tokio::task::spawn_blocking(move || signer.sign(&header, &claims)).await {
        Ok(Ok(token)) => token,
        _ => {
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "could not sign the id token");
        }
    };
    Json(TokenResponse {
        access_token,
        id_token: Some(id_token),
        expires_in: Some(sim.config.token_ttl.as_secs().saturating_sub(1)),
        token_type: "Bearer".to_owned(),
        scope: Some(GRANTED_SCOPE.to_owned()),
        refresh_token: None,
    })
    .into_response()
}

/// A key and the `kid` its tokens claim (not always its own).
struct TokenSigner {
    key: Arc<SimKey>,
    kid: String,
}

impl TokenSigner {
    fn sign(&self, header: &JwtHeader, claims: &IdTokenClaims) -> serde_json::Result<String> {
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
        let signing_input = format!("{header}.{claims}");
        let signature = self.key.signing.sign(signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes())))
    }
}

fn claims(config: &GoogleSimConfig, user: &TestUser, access_token: &str, fault: Option<TokenFault>) -> IdTokenClaims {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let ttl = i64::try_from(config.token_ttl.as_secs()).unwrap_or(3600);
    let (iat, exp) = if fault == Some(TokenFault::Expired) { (now - 7200, now - 3600) } else { (now, now + ttl) };
    let aud =
        if fault == Some(TokenFault::WrongAudience) { OTHER_AUDIENCE.to_owned() } else { config.client_id.clone() };
    let iss = if fault == Some(TokenFault::WrongIssuer) { OTHER_ISSUER.to_owned() } else { config.issuer.clone() };
    // at_hash: the left half of SHA-256 of the access token.
    let digest = Sha256::digest(access_token.as_bytes());
    IdTokenClaims {
        iss,
        azp: Some(config.client_id.clone()),
        aud: Audience::One(aud),
        sub: user.id.clone(),
        email: user.email.clone(),
        email_verified: user.email.as_ref().map(|_| user.email_verified),
        at_hash: Some(URL_SAFE_NO_PAD.encode(&digest[..16])),
        iat,
        exp,
        name: Some(user.full_name()),
        given_name: Some(user.first_name.clone()),
        family_name: Some(user.last_name.clone()),
        picture: None,
        locale: Some("en".to_owned()),
    }
}

async fn read_keys(State(sim): Shared) -> Response {
    let keys = lock(&sim.keys).iter().map(|key| key.jwk.clone()).collect();
    ([(header::CACHE_CONTROL, "public, max-age=21600, must-revalidate")], Json(Jwks { keys })).into_response()
}
