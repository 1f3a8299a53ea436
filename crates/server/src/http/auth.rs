//! Sign-up, confirmation, sign-in, sign-out and password reset.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use donkies_domain::{Email, Password};

use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, ClientIp};
use super::input::{Check, Field, RequestBody, Valid};
use super::{AppState, Limit};
use crate::services::identity::BAD_LOGIN;

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

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Session token for `Authorization: Token <token>`.
    pub token: String,
}

/// `{"field": ["message"]}` or `{"non_field_errors": ["message"]}`: the messages of each
/// wrong field, `non_field_errors` for the request as a whole.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"email": ["Enter a valid email address."]}))]
pub struct ValidationErrors(std::collections::BTreeMap<String, Vec<String>>);

/// `{"detail": "message"}`.
#[derive(Serialize, ToSchema)]
pub struct Detail {
    detail: String,
}

impl Check {
    /// A required email address.
    pub fn email(&mut self, name: &str, field: Field<String>) -> Option<Email> {
        let raw = self.text(name, field);
        self.parse(name, raw, |s| Email::parse(&s))
    }

    /// A required new password (8–128 characters).
    pub fn new_password(&mut self, name: &str, field: Field<String>) -> Option<Password> {
        let raw = self.secret(name, field);
        self.parse(name, raw, |s| Password::parse(&s))
    }

    /// A required name of at most 150 characters.
    pub fn name(&mut self, name: &str, field: Field<String>) -> Option<String> {
        let value = self.text(name, field)?.trim().to_owned();
        if value.chars().count() > 150 {
            self.error(name, "Ensure this field has no more than 150 characters.");
            return None;
        }
        Some(value)
    }
}

#[derive(Default, Deserialize, ToSchema)]
pub struct SignupRequest {
    #[schema(value_type = String, format = Email, required = true)]
    #[serde(default)]
    email: Field<String>,
    /// At least 8 characters.
    #[schema(value_type = String, format = Password, min_length = 8, required = true)]
    #[serde(default)]
    password: Field<String>,
    #[schema(value_type = String, max_length = 150, required = true)]
    #[serde(default)]
    first_name: Field<String>,
    #[schema(value_type = String, max_length = 150, required = true)]
    #[serde(default)]
    last_name: Field<String>,
}

pub struct Signup {
    email: Email,
    password: Password,
    first_name: String,
    last_name: String,
}

impl RequestBody for SignupRequest {
    type Parsed = Signup;
    fn parse(self, c: &mut Check) -> Option<Signup> {
        let email = c.email("email", self.email);
        let password = c.new_password("password", self.password);
        let first_name = c.name("first_name", self.first_name);
        let last_name = c.name("last_name", self.last_name);
        Some(Signup { email: email?, password: password?, first_name: first_name?, last_name: last_name? })
    }
}

/// Create an account and mail the confirmation link.
#[utoipa::path(post, path = "/v1/auth/signup", tag = "auth", request_body = SignupRequest,
    responses((status = 204, description = "created; confirmation email sent"), (status = 400, body = ValidationErrors)))]
async fn signup(State(state): State<AppState>, Valid(s): Valid<SignupRequest>) -> ApiResult<StatusCode> {
    state.services.identity.sign_up(&s.email, s.password, &s.first_name, &s.last_name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Default, Deserialize, ToSchema)]
pub struct ConfirmRequest {
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    encrypted_id: Field<String>,
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    confirmation_token: Field<String>,
}

impl RequestBody for ConfirmRequest {
    type Parsed = (String, String);
    fn parse(self, c: &mut Check) -> Option<(String, String)> {
        let id = c.text("encrypted_id", self.encrypted_id);
        let token = c.text("confirmation_token", self.confirmation_token);
        Some((id?.trim().to_owned(), token?.trim().to_owned()))
    }
}

/// Confirm the email address with the emailed link's values; signs the user in.
#[utoipa::path(post, path = "/v1/auth/signup/confirm", tag = "auth", request_body = ConfirmRequest,
    responses((status = 201, body = TokenResponse), (status = 400, body = ValidationErrors)))]
async fn confirm_signup(
    State(state): State<AppState>,
    Valid((encrypted_id, token)): Valid<ConfirmRequest>,
) -> ApiResult<Response> {
    let token = state.services.identity.confirm_sign_up(&encrypted_id, &token).await?;
    Ok((StatusCode::CREATED, axum::Json(TokenResponse { token })).into_response())
}

#[derive(Default, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    email: Field<String>,
    #[schema(value_type = String, format = Password, required = true)]
    #[serde(default)]
    password: Field<String>,
}

impl RequestBody for LoginRequest {
    type Parsed = Option<(String, String)>;
    fn parse(self, c: &mut Check) -> Option<Option<(String, String)>> {
        let email = c.text("email", self.email);
        let password = c.secret("password", self.password);
        // Whatever is missing, the answer must not tell an unknown email from a wrong password.
        Some(email.zip(password).map(|(e, p)| (e.trim().to_lowercase(), p)))
    }
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = ValidationErrors), (status = 429, body = Detail)))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Valid(credentials): Valid<LoginRequest>,
) -> ApiResult<axum::Json<TokenResponse>> {
    let Some((email, password)) = credentials else {
        return Err(ApiError::non_field(BAD_LOGIN));
    };
    state.limits.check(&state.services, Limit::Login, &[format!("ip:{ip}"), format!("email:{email}")]).await?;
    let token = state.services.identity.log_in(&email, password).await.inspect_err(|_| {
        metrics::counter!("donkies_sign_in_failures_total", "method" => "password").increment(1);
    })?;
    Ok(axum::Json(TokenResponse { token }))
}

/// Sign out: every token of the user stops working.
#[utoipa::path(get, path = "/v1/auth/logout", tag = "auth", security(("token" = [])), responses((status = 204)))]
async fn logout_get(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    state.services.identity.log_out(auth.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out: every token of the user stops working.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("token" = [])), responses((status = 204)))]
async fn logout_post(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    logout_get(State(state), auth).await
}

#[derive(Default, Deserialize, ToSchema)]
pub struct ResetRequest {
    #[schema(value_type = String, format = Email, required = true)]
    #[serde(default)]
    email: Field<String>,
}

impl RequestBody for ResetRequest {
    type Parsed = Email;
    fn parse(self, c: &mut Check) -> Option<Email> {
        c.email("email", self.email)
    }
}

/// Mail a password-reset link; 204 whether or not the address is known.
#[utoipa::path(post, path = "/v1/password/reset/request", tag = "auth", request_body = ResetRequest,
    responses((status = 204), (status = 400, body = ValidationErrors), (status = 429, body = Detail)))]
async fn request_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Valid(email): Valid<ResetRequest>,
) -> ApiResult<StatusCode> {
    state.limits.check(&state.services, Limit::PasswordReset, &[format!("ip:{ip}"), format!("email:{email}")]).await?;
    state.services.identity.request_password_reset(&email).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The same as `/v1/password/reset/request` (the original spelling).
#[utoipa::path(post, path = "/v1/password/reset/require", tag = "auth", request_body = ResetRequest,
    responses((status = 204), (status = 400, body = ValidationErrors), (status = 429, body = Detail)))]
async fn require_password_reset(
    state: State<AppState>,
    ip: ClientIp,
    email: Valid<ResetRequest>,
) -> ApiResult<StatusCode> {
    request_password_reset(state, ip, email).await
}

#[derive(Default, Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    encrypted_id: Field<String>,
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    reset_token: Field<String>,
    #[schema(value_type = String, format = Password, min_length = 8, required = true)]
    #[serde(default)]
    new_password: Field<String>,
}

pub struct PasswordReset {
    encrypted_id: String,
    token: String,
    password: Password,
}

impl RequestBody for ResetPasswordRequest {
    type Parsed = PasswordReset;
    fn parse(self, c: &mut Check) -> Option<PasswordReset> {
        let encrypted_id = c.text("encrypted_id", self.encrypted_id);
        let token = c.text("reset_token", self.reset_token);
        let password = c.new_password("new_password", self.new_password);
        Some(PasswordReset {
            encrypted_id: encrypted_id?.trim().to_owned(),
            token: token?.trim().to_owned(),
            password: password?,
        })
    }
}

/// Set a new password with a reset link's values; the link works once. Signs out everywhere.
#[utoipa::path(post, path = "/v1/password/reset", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 204), (status = 400, body = ValidationErrors)))]
async fn reset_password(State(state): State<AppState>, Valid(r): Valid<ResetPasswordRequest>) -> ApiResult<StatusCode> {
    state.services.identity.reset_password(&r.encrypted_id, &r.token, r.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
