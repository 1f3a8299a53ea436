//! Sign-up, confirmation, sign-in, sign-out and password reset.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use donkies_domain::{Email, Password};
use donkies_store::tokens::{NewActionToken, Purpose};
use donkies_store::users::NewUser;
use donkies_store::{StoreError, new_id, now, tokens, users};

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Body, ClientIp, Fields};
use super::{AppState, Limit};
use crate::crypto::{self, new_token, token_hash};
use crate::mail;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(confirm_signup))
        .routes(routes!(login))
        .routes(routes!(logout_get, logout_post))
        .routes(routes!(request_password_reset))
        .routes(routes!(require_password_reset))
        .routes(routes!(reset_password))
}

pub const EMAIL_TAKEN: &str = "User with this email already exists.";
pub const BAD_LOGIN: &str = "Email or password is not correct.";

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Session token for `Authorization: Token <token>`.
    pub token: String,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SignupRequest {
    email: String,
    /// At least 8 characters.
    password: String,
    first_name: String,
    last_name: String,
}

/// `{"field": ["message"]}` or `{"non_field_errors": ["message"]}`.
#[derive(Serialize, ToSchema)]
pub struct ValidationErrors {
    #[schema(example = json!(["This field is required."]))]
    non_field_errors: Vec<String>,
}

/// `{"detail": "message"}`.
#[derive(Serialize, ToSchema)]
pub struct Detail {
    detail: String,
}

/// Parse `field` as an email, recording an error when it is missing or invalid.
pub fn email_field(fields: &mut Fields, field: &str) -> Option<Email> {
    let raw = fields.required_str(field)?;
    match Email::parse(&raw) {
        Ok(email) => Some(email),
        Err(e) => {
            fields.error(field, e.to_string());
            None
        }
    }
}

/// Parse `field` as a new password (8–128 characters).
pub fn password_field(fields: &mut Fields, field: &str) -> Option<Password> {
    let raw = fields.required_secret(field)?;
    match Password::parse(&raw) {
        Ok(p) => Some(p),
        Err(e) => {
            fields.error(field, e.to_string());
            None
        }
    }
}

fn name_field(fields: &mut Fields, field: &str) -> Option<String> {
    let name = fields.required_str(field)?.trim().to_owned();
    if name.chars().count() > 150 {
        fields.error(field, "Ensure this field has no more than 150 characters.");
        return None;
    }
    Some(name)
}

/// Start a session: a new random token, of which only the hash is stored.
pub async fn issue_token(state: &AppState, user_id: &str) -> ApiResult<String> {
    let token = new_token();
    let t = now();
    tokens::insert_session(&state.db, &token_hash(&token), user_id, t, t + state.settings.token_ttl).await?;
    Ok(token)
}

/// Create an account and mail the confirmation link.
#[utoipa::path(post, path = "/v1/auth/signup", tag = "auth", request_body = SignupRequest,
    responses((status = 204, description = "created; confirmation email sent"), (status = 400, body = ValidationErrors)))]
async fn signup(State(state): State<AppState>, body: Body) -> ApiResult<StatusCode> {
    let mut f = Fields::new(body);
    let email = email_field(&mut f, "email");
    let password = password_field(&mut f, "password");
    let first_name = name_field(&mut f, "first_name");
    let last_name = name_field(&mut f, "last_name");
    f.finish()?;
    let (Some(email), Some(password), Some(first_name), Some(last_name)) = (email, password, first_name, last_name)
    else {
        return Err(ApiError::non_field("Invalid data."));
    };
    let password_hash = crypto::hash_password(password.expose().to_owned()).await?;
    let id = new_id();
    let encrypted_id = new_token();
    let confirmation = new_token();
    let mut tx = state.db.begin().await?;
    let inserted = users::insert(
        &mut tx,
        &NewUser {
            id: &id,
            email: email.as_str(),
            password_hash: &password_hash,
            first_name: &first_name,
            last_name: &last_name,
            identifier: &new_token(),
            encrypted_id: &encrypted_id,
            confirmation_token_hash: &token_hash(&confirmation),
            now: now(),
        },
    )
    .await;
    match inserted {
        Err(StoreError::Conflict(_)) => return Err(ApiError::field("email", EMAIL_TAKEN)),
        other => other?,
    }
    let link = state.settings.frontend_link("confirm", &[("id", &encrypted_id), ("token", &confirmation)]);
    mail::queue(
        &mut tx,
        Some(&id),
        email.as_str(),
        mail::signup_confirmation(&first_name, &link),
        state.settings.job_max_attempts,
    )
    .await?;
    let create_user = serde_json::json!({ "user_id": id });
    let kind = crate::banking::CREATE_AGGREGATOR_USER_JOB;
    state.banking.enqueue(&mut tx, kind, create_user, std::time::Duration::ZERO).await?;
    tx.commit().await?;
    state.wake_worker.notify_one();
    tracing::info!(user = %id, "user signed up");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ConfirmRequest {
    encrypted_id: String,
    confirmation_token: String,
}

/// Confirm the email address with the emailed link's values; signs the user in.
#[utoipa::path(post, path = "/v1/auth/signup/confirm", tag = "auth", request_body = ConfirmRequest,
    responses((status = 201, body = TokenResponse), (status = 400, body = ValidationErrors)))]
async fn confirm_signup(State(state): State<AppState>, body: Body) -> ApiResult<Response> {
    let mut f = Fields::new(body);
    let encrypted_id = f.required_str("encrypted_id");
    let token = f.required_str("confirmation_token");
    f.finish()?;
    let (Some(encrypted_id), Some(token)) = (encrypted_id, token) else {
        return Err(ApiError::non_field("Invalid data."));
    };
    let Some(user) = users::find_by_encrypted_id(&state.db, encrypted_id.trim()).await? else {
        return Err(ApiError::field("encrypted_id", "Provided id is not correct"));
    };
    if user.is_confirmed {
        return Err(ApiError::non_field("Registration already has been confirmed."));
    }
    let confirmed = users::confirm(&state.db, &user.id, &token_hash(token.trim()), now()).await?;
    state.sessions.forget_user(&user.id);
    if !confirmed {
        return Err(ApiError::non_field("Provided confirmation token is not correct"));
    }
    let token = issue_token(&state, &user.id).await?;
    Ok((StatusCode::CREATED, axum::Json(TokenResponse { token })).into_response())
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = ValidationErrors), (status = 429, body = Detail)))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Body,
) -> ApiResult<axum::Json<TokenResponse>> {
    let mut f = Fields::new(body);
    let email = f.required_str("email");
    let password = f.required_secret("password");
    f.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::non_field(BAD_LOGIN));
    };
    let email = email.trim().to_lowercase();
    state.limits.check(Limit::Login, &[format!("ip:{ip}"), format!("email:{email}")])?;
    let user = users::find_by_email(&state.db, &email).await?;
    let ok = crypto::verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let Some(user) = user.filter(|_| ok) else {
        return Err(ApiError::non_field(BAD_LOGIN));
    };
    let token = issue_token(&state, &user.id).await?;
    Ok(axum::Json(TokenResponse { token }))
}

async fn logout(state: AppState, auth: AuthUser) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    tokens::delete_sessions(&mut tx, &auth.user.id).await?;
    tx.commit().await?;
    state.sessions.forget_user(&auth.user.id);
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out: every token of the user stops working.
#[utoipa::path(get, path = "/v1/auth/logout", tag = "auth", security(("token" = [])), responses((status = 204)))]
async fn logout_get(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    logout(state, auth).await
}

/// Sign out: every token of the user stops working.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("token" = [])), responses((status = 204)))]
async fn logout_post(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    logout(state, auth).await
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ResetRequest {
    email: String,
}

async fn password_reset_request(state: AppState, ip: std::net::IpAddr, body: Body) -> ApiResult<StatusCode> {
    let mut f = Fields::new(body);
    let email = email_field(&mut f, "email");
    f.finish()?;
    let Some(email) = email else {
        return Err(ApiError::non_field("Invalid data."));
    };
    state.limits.check(Limit::PasswordReset, &[format!("ip:{ip}"), format!("email:{email}")])?;
    let Some(user) = users::find_by_email(&state.db, email.as_str()).await? else {
        // Same answer as for a known address: no account enumeration.
        return Ok(StatusCode::NO_CONTENT);
    };
    let token = new_token();
    let t = now();
    let mut tx = state.db.begin().await?;
    tokens::insert_action(
        &mut tx,
        &NewActionToken {
            token_hash: &token_hash(&token),
            user_id: &user.id,
            purpose: Purpose::PasswordReset,
            new_email: None,
            now: t,
            expires_at: t + state.settings.link_ttl,
        },
    )
    .await?;
    let link = state.settings.frontend_link("reset", &[("id", &user.encrypted_id), ("token", &token)]);
    let message = mail::password_reset(&user.first_name, &link, state.settings.link_ttl.num_minutes());
    mail::queue(&mut tx, Some(&user.id), &user.email, message, state.settings.job_max_attempts).await?;
    tx.commit().await?;
    state.wake_worker.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// Mail a password-reset link; 204 whether or not the address is known.
#[utoipa::path(post, path = "/v1/password/reset/request", tag = "auth", request_body = ResetRequest,
    responses((status = 204), (status = 400, body = ValidationErrors), (status = 429, body = Detail)))]
async fn request_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Body,
) -> ApiResult<StatusCode> {
    password_reset_request(state, ip, body).await
}

/// The same as `/v1/password/reset/request` (the original spelling).
#[utoipa::path(post, path = "/v1/password/reset/require", tag = "auth", request_body = ResetRequest,
    responses((status = 204), (status = 400, body = ValidationErrors), (status = 429, body = Detail)))]
async fn require_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Body,
) -> ApiResult<StatusCode> {
    password_reset_request(state, ip, body).await
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ResetPasswordRequest {
    encrypted_id: String,
    reset_token: String,
    new_password: String,
}

/// Set a new password with a reset link's values; the link works once. Signs out everywhere.
#[utoipa::path(post, path = "/v1/password/reset", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 204), (status = 400, body = ValidationErrors)))]
async fn reset_password(State(state): State<AppState>, body: Body) -> ApiResult<StatusCode> {
    let mut f = Fields::new(body);
    let encrypted_id = f.required_str("encrypted_id");
    let token = f.required_str("reset_token");
    let password = password_field(&mut f, "new_password");
    f.finish()?;
    let (Some(encrypted_id), Some(token), Some(password)) = (encrypted_id, token, password) else {
        return Err(ApiError::non_field("Invalid data."));
    };
    let Some(user) = users::find_by_encrypted_id(&state.db, encrypted_id.trim()).await? else {
        return Err(ApiError::field("encrypted_id", "Provided id is not correct"));
    };
    let password_hash = crypto::hash_password(password.expose().to_owned()).await?;
    let mut tx = state.db.begin().await?;
    let used =
        tokens::consume_action(&mut tx, &token_hash(token.trim()), &user.id, Purpose::PasswordReset, now()).await?;
    if used.is_none() {
        return Err(ApiError::non_field("Provided reset token is not correct or has expired."));
    }
    users::set_password_hash(&mut tx, &user.id, &password_hash, now()).await?;
    tokens::delete_sessions(&mut tx, &user.id).await?;
    tx.commit().await?;
    state.sessions.forget_user(&user.id);
    Ok(StatusCode::NO_CONTENT)
}
