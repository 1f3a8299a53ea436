//! Sign-in with Facebook, Google and Twitter, and the login URLs front ends show.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use donkies_domain::Email;
use donkies_social::SocialError;
use donkies_store::{now, social as identities};

use super::AppState;
use super::auth::{TokenResponse, issue_token};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Fields};
use crate::social::{ProviderAccount, SignIn, find_or_create_user};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(facebook_sign_in))
        .routes(routes!(google_sign_in))
        .routes(routes!(twitter_request_token, twitter_sign_in))
        .routes(routes!(login_settings))
}

/// How long a Twitter request token waits for the user to come back.
const TWITTER_REQUEST_TTL_MINUTES: i64 = 15;

fn provider_error(provider: &str, err: SocialError) -> ApiError {
    tracing::info!(provider, error = %err, "sign-in provider refused or failed");
    match err {
        SocialError::Unavailable { .. } => {
            ApiError::non_field(format!("{provider} could not be reached. Please try again in a moment."))
        }
        SocialError::Rejected { message } => {
            ApiError::non_field(format!("{provider} did not accept the sign-in: {message}"))
        }
        SocialError::Invalid { .. } => ApiError::non_field(format!("{provider} sent an answer we could not read.")),
    }
}

fn not_configured(provider: &str) -> ApiError {
    ApiError::non_field(format!("Sign-in with {provider} is not available."))
}

/// Sign the user in (creating the account when new) and answer with a session token.
async fn finish(
    state: &AppState,
    account: ProviderAccount,
    typed_email: Option<Email>,
    provider: &str,
) -> ApiResult<axum::Json<TokenResponse>> {
    match find_or_create_user(state, &account, typed_email.as_ref()).await? {
        SignIn::User(user_id) => Ok(axum::Json(TokenResponse { token: issue_token(state, &user_id).await? })),
        SignIn::NeedsEmail => Err(ApiError::field(
            "email",
            format!(
                "{provider} did not share a verified email address. Ask the user for one and send it as \"email\" with a new sign-in."
            ),
        )),
        SignIn::EmailTaken => Err(ApiError::field(
            "email",
            "An account with this email already exists. Sign in with its password instead.",
        )),
    }
}

/// The optional `email` a front end sends when the provider shares none.
fn typed_email(f: &mut Fields) -> Option<Email> {
    let raw = f.optional_str("email")?;
    match Email::parse(&raw) {
        Ok(e) => Some(e),
        Err(e) => {
            f.error("email", e.to_string());
            None
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct CodeRequest {
    /// The authorization code the provider gave the front end.
    code: String,
    /// The redirect URI the code was issued for [default: `<frontend>/login_<provider>`].
    redirect_uri: Option<String>,
    /// The `state` from `/v1/settings/login`, when the front end kept it.
    state: Option<String>,
    /// An address to use when the provider shares none.
    email: Option<String>,
}

fn code_fields(state: &AppState, f: &mut Fields, page: &str) -> Option<(String, String)> {
    let code = f.required_str("code");
    let redirect = f
        .optional_str("redirect_uri")
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| state.settings.frontend_link(page, &[]).trim_end_matches('?').to_owned());
    if let Some(given) = f.optional_str("state").filter(|s| !s.is_empty())
        && !crate::crypto::verify_state(state.settings.secret_key.expose(), &given)
    {
        f.error("state", "The sign-in has expired or did not start here; start again.");
    }
    Some((code?, redirect))
}

/// Sign in with a Facebook authorization code.
#[utoipa::path(post, path = "/v1/auth/facebook", tag = "auth", request_body = CodeRequest,
    responses((status = 200, body = TokenResponse), (status = 400, description = "bad, reused or expired code; provider down; no email")))]
async fn facebook_sign_in(State(state): State<AppState>, body: Body) -> ApiResult<axum::Json<TokenResponse>> {
    let mut f = Fields::new(body);
    let parsed = code_fields(&state, &mut f, "login_facebook");
    let email = typed_email(&mut f);
    f.finish()?;
    let (code, redirect_uri) = parsed.ok_or_else(|| ApiError::non_field("Invalid data."))?;
    let client = state.social.facebook.as_ref().ok_or_else(|| not_configured("Facebook"))?;
    let profile = client.sign_in(code.trim(), &redirect_uri).await.map_err(|e| provider_error("Facebook", e))?;
    let account = ProviderAccount {
        provider: "facebook",
        id: profile.id.clone(),
        // Facebook only shares confirmed addresses.
        verified_email: profile.email.clone(),
        first_name: profile.first_name.clone(),
        last_name: profile.last_name.clone(),
        profile: serde_json::to_value(&profile).unwrap_or_default(),
    };
    finish(&state, account, email, "Facebook").await
}

/// Sign in with a Google authorization code (OpenID Connect; the ID token is verified).
#[utoipa::path(post, path = "/v1/auth/google", tag = "auth", request_body = CodeRequest,
    responses((status = 200, body = TokenResponse), (status = 400, description = "bad code, invalid ID token, provider down, no email")))]
async fn google_sign_in(State(state): State<AppState>, body: Body) -> ApiResult<axum::Json<TokenResponse>> {
    let mut f = Fields::new(body);
    let parsed = code_fields(&state, &mut f, "login_google");
    let email = typed_email(&mut f);
    f.finish()?;
    let (code, redirect_uri) = parsed.ok_or_else(|| ApiError::non_field("Invalid data."))?;
    let client = state.social.google.as_ref().ok_or_else(|| not_configured("Google"))?;
    let identity = client.sign_in(code.trim(), &redirect_uri).await.map_err(|e| provider_error("Google", e))?;
    let account = ProviderAccount {
        provider: "google",
        id: identity.sub.clone(),
        verified_email: identity.email.clone().filter(|_| identity.email_verified),
        first_name: identity.given_name.clone().unwrap_or_default(),
        last_name: identity.family_name.clone().unwrap_or_default(),
        profile: serde_json::json!({
            "sub": identity.sub, "email": identity.email, "email_verified": identity.email_verified,
            "given_name": identity.given_name, "family_name": identity.family_name,
        }),
    };
    finish(&state, account, email, "Google").await
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
    let client = state.social.twitter.as_ref().ok_or_else(|| not_configured("Twitter"))?;
    let callback = state.settings.frontend_link("login_twitter", &[]).trim_end_matches('?').to_owned();
    let token = client.request_token(&callback).await.map_err(|e| provider_error("Twitter", e))?;
    let sealed = state.sealer.seal(token.oauth_token_secret.expose_secret());
    let t = now();
    identities::save_request(
        &state.db,
        &token.oauth_token,
        "twitter",
        &sealed,
        t,
        t + chrono::Duration::minutes(TWITTER_REQUEST_TTL_MINUTES),
    )
    .await?;
    Ok(axum::Json(TwitterStart {
        authorize_url: client.authorize_url(&token.oauth_token),
        oauth_token: token.oauth_token,
    }))
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct TwitterCallback {
    oauth_token: String,
    oauth_verifier: String,
    /// An address to use when Twitter shares none.
    email: Option<String>,
}

/// Finish a Twitter sign-in with the values Twitter sent back to the front end.
#[utoipa::path(post, path = "/v1/auth/twitter", tag = "auth", request_body = TwitterCallback,
    responses((status = 200, body = TokenResponse), (status = 400, description = "unknown or used request token, denied, provider down, no email")))]
async fn twitter_sign_in(State(state): State<AppState>, body: Body) -> ApiResult<axum::Json<TokenResponse>> {
    let mut f = Fields::new(body);
    let token = f.required_str("oauth_token");
    let verifier = f.required_str("oauth_verifier");
    let email = typed_email(&mut f);
    f.finish()?;
    let (Some(token), Some(verifier)) = (token, verifier) else {
        return Err(ApiError::non_field("Invalid data."));
    };
    let client = state.social.twitter.as_ref().ok_or_else(|| not_configured("Twitter"))?;
    let Some(sealed) = identities::take_request(&state.db, token.trim(), "twitter", now()).await? else {
        return Err(ApiError::non_field("This Twitter sign-in has expired or was already used; start again."));
    };
    let secret = state
        .sealer
        .open(&sealed)
        .ok_or_else(|| ApiError::non_field("This Twitter sign-in cannot be finished; start again."))?;
    let access =
        client.access_token(token.trim(), &secret, verifier.trim()).await.map_err(|e| provider_error("Twitter", e))?;
    let profile = client
        .verify_credentials(&access.oauth_token, access.oauth_token_secret.expose_secret())
        .await
        .map_err(|e| provider_error("Twitter", e))?;
    let (first_name, last_name) = match profile.name.split_once(' ') {
        Some((first, last)) => (first.to_owned(), last.to_owned()),
        None => (profile.name.clone(), String::new()),
    };
    let account = ProviderAccount {
        provider: "twitter",
        id: profile.id.clone(),
        // Twitter shares only addresses it has verified, and only with permission.
        verified_email: profile.email.clone(),
        first_name,
        last_name,
        profile: serde_json::json!({ "id": profile.id, "name": profile.name, "screen_name": profile.screen_name, "email": profile.email }),
    };
    finish(&state, account, email, "Twitter").await
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
    let signed = crate::crypto::sign_state(state.settings.secret_key.expose());
    let redirect = |page: &str| state.settings.frontend_link(page, &[]).trim_end_matches('?').to_owned();
    axum::Json(LoginSettings {
        facebook_login_url: state.social.facebook.as_ref().map(|c| c.login_url(&redirect("login_facebook"), &signed)),
        google_login_url: state.social.google.as_ref().map(|c| c.login_url(&redirect("login_google"), &signed)),
    })
}
