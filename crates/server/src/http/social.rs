//! Sign-in with Facebook, Google and Twitter, and the login URLs front ends show.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use donkies_domain::Email;

use super::AppState;
use super::auth::TokenResponse;
use super::error::ApiResult;
use super::input::{Check, Field, RequestBody, Valid};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(facebook_sign_in))
        .routes(routes!(google_sign_in))
        .routes(routes!(twitter_request_token, twitter_sign_in))
        .routes(routes!(login_settings))
}

impl Check {
    /// The optional `email` a front end sends when the provider shares none.
    fn typed_email(&mut self, field: Field<String>) -> Option<Email> {
        let raw = self.optional("email", field);
        self.parse("email", raw, |s| Email::parse(&s))
    }
}

#[derive(Default, Deserialize, ToSchema)]
pub struct CodeRequest {
    /// The authorization code the provider gave the front end.
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    code: Field<String>,
    /// The redirect URI the code was issued for [default: `<frontend>/login_<provider>`].
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    redirect_uri: Field<String>,
    /// The `state` from `/v1/settings/login`, when the front end kept it.
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    state: Field<String>,
    /// An address to use when the provider shares none.
    #[schema(value_type = Option<String>, format = Email)]
    #[serde(default)]
    email: Field<String>,
}

pub struct CodeSignIn {
    code: String,
    redirect_uri: Option<String>,
    state: Option<String>,
    email: Option<Email>,
}

impl RequestBody for CodeRequest {
    type Parsed = CodeSignIn;
    fn parse(self, c: &mut Check) -> Option<CodeSignIn> {
        let code = c.text("code", self.code);
        let redirect_uri = c.optional("redirect_uri", self.redirect_uri).filter(|r| !r.trim().is_empty());
        let state = c.optional("state", self.state);
        let email = c.typed_email(self.email);
        Some(CodeSignIn { code: code?.trim().to_owned(), redirect_uri, state, email })
    }
}

/// Sign in with a Facebook authorization code.
#[utoipa::path(post, path = "/v1/auth/facebook", tag = "auth", request_body = CodeRequest,
    responses((status = 200, body = TokenResponse), (status = 400, description = "bad, reused or expired code; provider down; no email")))]
async fn facebook_sign_in(
    State(state): State<AppState>,
    Valid(r): Valid<CodeRequest>,
) -> ApiResult<axum::Json<TokenResponse>> {
    let token = state
        .services
        .identity
        .facebook_sign_in(&r.code, r.redirect_uri.as_deref(), r.state.as_deref(), r.email.as_ref())
        .await?;
    Ok(axum::Json(TokenResponse { token }))
}

/// Sign in with a Google authorization code (OpenID Connect; the ID token is verified).
#[utoipa::path(post, path = "/v1/auth/google", tag = "auth", request_body = CodeRequest,
    responses((status = 200, body = TokenResponse), (status = 400, description = "bad code, invalid ID token, provider down, no email")))]
async fn google_sign_in(
    State(state): State<AppState>,
    Valid(r): Valid<CodeRequest>,
) -> ApiResult<axum::Json<TokenResponse>> {
    let token = state
        .services
        .identity
        .google_sign_in(&r.code, r.redirect_uri.as_deref(), r.state.as_deref(), r.email.as_ref())
        .await?;
    Ok(axum::Json(TokenResponse { token }))
}

#[derive(Serialize, ToSchema)]
pub struct TwitterStart {
    /// Send the user here to approve the sign-in.
    authorize_url: String,
    oauth_token: String,
}

/// Start a Twitter sign-in: a request token and the URL where the user approves it.
#[utoipa::path(get, path = "/v1/auth/twitter", tag = "auth",
    responses((status = 200, body = TwitterStart), (status = 400, description = "provider down or not configured")))]
async fn twitter_request_token(State(state): State<AppState>) -> ApiResult<axum::Json<TwitterStart>> {
    let start = state.services.identity.twitter_request_token().await?;
    Ok(axum::Json(TwitterStart { authorize_url: start.authorize_url, oauth_token: start.oauth_token }))
}

#[derive(Default, Deserialize, ToSchema)]
pub struct TwitterCallback {
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    oauth_token: Field<String>,
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    oauth_verifier: Field<String>,
    /// An address to use when Twitter shares none.
    #[schema(value_type = Option<String>, format = Email)]
    #[serde(default)]
    email: Field<String>,
}

impl RequestBody for TwitterCallback {
    type Parsed = (String, String, Option<Email>);
    fn parse(self, c: &mut Check) -> Option<Self::Parsed> {
        let token = c.text("oauth_token", self.oauth_token);
        let verifier = c.text("oauth_verifier", self.oauth_verifier);
        let email = c.typed_email(self.email);
        Some((token?.trim().to_owned(), verifier?.trim().to_owned(), email))
    }
}

/// Finish a Twitter sign-in with the values Twitter sent back to the front end.
#[utoipa::path(post, path = "/v1/auth/twitter", tag = "auth", request_body = TwitterCallback,
    responses((status = 200, body = TokenResponse), (status = 400, description = "unknown or used request token, denied, provider down, no email")))]
async fn twitter_sign_in(
    State(state): State<AppState>,
    Valid((token, verifier, email)): Valid<TwitterCallback>,
) -> ApiResult<axum::Json<TokenResponse>> {
    let token = state.services.identity.twitter_sign_in(&token, &verifier, email.as_ref()).await?;
    Ok(axum::Json(TokenResponse { token }))
}

/// Login URLs for the configured providers (a provider without keys is left out).
#[derive(Serialize, ToSchema)]
pub struct LoginSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    facebook_login_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    google_login_url: Option<String>,
}

/// The provider login URLs, redirecting to `<frontend>/login_facebook` and `<frontend>/login_google`.
#[utoipa::path(get, path = "/v1/settings/login", tag = "auth", responses((status = 200, body = LoginSettings)))]
async fn login_settings(State(state): State<AppState>) -> axum::Json<LoginSettings> {
    let urls = state.services.identity.login_urls();
    axum::Json(LoginSettings { facebook_login_url: urls.facebook, google_login_url: urls.google })
}
