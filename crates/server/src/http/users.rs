//! The signed-in user: profile, settings, email and password changes, closing the account.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use donkies_domain::{DateOfBirth, Phone, PostalCode, Ssn, TransferAmount, UsState};
use donkies_store::tokens::{NewActionToken, Purpose};
use donkies_store::users::{ProfileUpdate, User};
use donkies_store::{StoreError, now, tokens, users};

use super::AppState;
use super::auth::{EMAIL_TAKEN, email_field, password_field};
use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Body, Fields};
use crate::crypto::{self, new_token, token_hash};
use crate::mail;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_user, update_user))
        .routes(routes!(update_user_settings))
        .routes(routes!(get_settings))
        .routes(routes!(change_email))
        .routes(routes!(confirm_email_change))
        .routes(routes!(change_password))
        .routes(routes!(resend_confirmation_link))
        .routes(routes!(close_account))
}

/// The User resource.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    id: String,
    /// The aggregator's user id; null until created there.
    guid: Option<String>,
    identifier: String,
    email: String,
    encrypted_id: String,
    is_confirmed: bool,
    first_name: String,
    last_name: String,
    address1: Option<String>,
    address2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    postal_code: Option<String>,
    /// YYYY-MM-DD
    date_of_birth: Option<String>,
    /// Masked: `***-**-1234`.
    ssn: Option<String>,
    phone: Option<String>,
    dwolla_customer: Option<serde_json::Value>,
    is_profile_completed: bool,
    minimum_transfer_amount: i64,
    is_even_roundup: bool,
    is_closed_account: bool,
    total_debt: f64,
    signup_steps: Option<serde_json::Value>,
    is_signup_completed: bool,
    profile_image_url: Option<String>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            ssn: u.ssn_last4.as_ref().map(|last4| format!("***-**-{last4}")),
            date_of_birth: u.date_of_birth.map(|d| d.format("%Y-%m-%d").to_string()),
            id: u.id,
            guid: u.guid,
            identifier: u.identifier,
            email: u.email,
            encrypted_id: u.encrypted_id,
            is_confirmed: u.is_confirmed,
            first_name: u.first_name,
            last_name: u.last_name,
            address1: u.address1,
            address2: u.address2,
            city: u.city,
            state: u.state,
            postal_code: u.postal_code,
            phone: u.phone,
            dwolla_customer: None,
            is_profile_completed: u.is_profile_completed,
            minimum_transfer_amount: u.minimum_transfer_amount,
            is_even_roundup: u.is_even_roundup,
            is_closed_account: u.is_closed_account,
            total_debt: 0.0,
            signup_steps: None,
            is_signup_completed: true,
            profile_image_url: u.profile_image_url,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Message {
    message: String,
}

fn message(text: &str) -> axum::Json<Message> {
    axum::Json(Message { message: text.to_owned() })
}

/// The signed-in user.
#[utoipa::path(get, path = "/v1/user", tag = "user", security(("token" = [])), responses((status = 200, body = UserView)))]
async fn get_user(auth: AuthUser) -> axum::Json<UserView> {
    axum::Json(auth.user.into())
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ProfileRequest {
    first_name: Option<String>,
    last_name: Option<String>,
    /// 10 digits.
    phone: Option<String>,
    address1: Option<String>,
    address2: Option<String>,
    city: Option<String>,
    /// US state code.
    state: Option<String>,
    /// 5 digits.
    postal_code: Option<String>,
    /// YYYY-MM-DD, 18 or older.
    date_of_birth: Option<String>,
    /// XXX-XX-XXXX
    ssn: Option<String>,
}

fn parsed<T, E: std::fmt::Display>(f: &mut Fields, field: &str, parse: impl FnOnce(&str) -> Result<T, E>) -> Option<T> {
    let raw = f.optional_str(field)?;
    match parse(raw.trim()) {
        Ok(v) => Some(v),
        Err(e) => {
            f.error(field, e.to_string());
            None
        }
    }
}

fn text(f: &mut Fields, field: &str, max: usize) -> Option<String> {
    let value = f.optional_str(field)?.trim().to_owned();
    if value.chars().count() > max {
        f.error(field, format!("Ensure this field has no more than {max} characters."));
        return None;
    }
    Some(value)
}

/// Fill in the profile. Once every field is present the profile is complete and frozen.
#[utoipa::path(put, path = "/v1/user", tag = "user", security(("token" = [])), request_body = ProfileRequest,
    responses((status = 200, body = UserView), (status = 400, description = "field errors, or the profile is complete")))]
async fn update_user(State(state): State<AppState>, auth: AuthUser, body: Body) -> ApiResult<axum::Json<UserView>> {
    const COMPLETE: &str = "Profile is completed and can not be changed.";
    if auth.user.is_profile_completed {
        return Err(ApiError::non_field(COMPLETE));
    }
    let mut f = Fields::new(body);
    let today = now().date_naive();
    let first_name = text(&mut f, "first_name", 150);
    let last_name = text(&mut f, "last_name", 150);
    for (field, value) in [("first_name", &first_name), ("last_name", &last_name)] {
        if value.as_deref() == Some("") {
            f.error(field, "This field may not be blank.");
        }
    }
    let phone = parsed(&mut f, "phone", Phone::parse);
    let address1 = text(&mut f, "address1", 255).filter(|s| !s.is_empty());
    let address2 = text(&mut f, "address2", 255);
    let city = text(&mut f, "city", 100).filter(|s| !s.is_empty());
    let us_state = parsed(&mut f, "state", UsState::parse);
    let postal_code = parsed(&mut f, "postal_code", PostalCode::parse);
    let date_of_birth = parsed(&mut f, "date_of_birth", |s| DateOfBirth::parse(s, today));
    let ssn = parsed(&mut f, "ssn", Ssn::parse);
    f.finish()?;
    let update = ProfileUpdate {
        first_name,
        last_name,
        phone: phone.map(|p| p.as_str().to_owned()),
        address1,
        address2,
        city,
        state: us_state.map(|s| s.as_str().to_owned()),
        postal_code: postal_code.map(|p| p.as_str().to_owned()),
        date_of_birth: date_of_birth.map(|d| d.date()),
        ssn_encrypted: ssn.as_ref().map(|s| state.sealer.seal(s.digits())),
        ssn_last4: ssn.as_ref().map(|s| s.last4().to_owned()),
    };
    let updated = users::update_profile(&state.db, &auth.user.id, &update, now()).await?;
    state.sessions.forget_user(&auth.user.id);
    match updated {
        Some(user) => Ok(axum::Json(user.into())),
        None => Err(ApiError::non_field(COMPLETE)),
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct UserSettings {
    /// One of 5, 10, 20, 50, 100.
    minimum_transfer_amount: i64,
    is_even_roundup: bool,
}

/// Change the transfer minimum and the even round-up choice.
#[utoipa::path(patch, path = "/v1/user_settings", tag = "user", security(("token" = [])), request_body = UserSettings,
    responses((status = 200, body = UserSettings), (status = 400, description = "field errors")))]
async fn update_user_settings(
    State(state): State<AppState>,
    auth: AuthUser,
    body: Body,
) -> ApiResult<axum::Json<UserSettings>> {
    let mut f = Fields::new(body);
    let amount = f.optional_int("minimum_transfer_amount");
    let amount = amount.and_then(|n| match TransferAmount::parse(n) {
        Ok(a) => Some(a.get()),
        Err(e) => {
            f.error("minimum_transfer_amount", e.to_string());
            None
        }
    });
    let even = f.optional_bool("is_even_roundup");
    f.finish()?;
    users::update_settings(&state.db, &auth.user.id, amount, even, now()).await?;
    state.sessions.forget_user(&auth.user.id);
    Ok(axum::Json(UserSettings {
        minimum_transfer_amount: amount.unwrap_or(auth.user.minimum_transfer_amount),
        is_even_roundup: even.unwrap_or(auth.user.is_even_roundup),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SettingsView {
    transfer_amounts: [i64; 5],
}

/// Choices the front end offers.
#[utoipa::path(get, path = "/v1/settings", tag = "user", security(("token" = [])), responses((status = 200, body = SettingsView)))]
async fn get_settings(_auth: AuthUser) -> axum::Json<SettingsView> {
    axum::Json(SettingsView { transfer_amounts: TransferAmount::CHOICES })
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ChangeEmailRequest {
    new_email: String,
}

/// Mail a confirmation link to the new address; the email changes when it is followed.
#[utoipa::path(post, path = "/v1/user/change/email", tag = "user", security(("token" = [])), request_body = ChangeEmailRequest,
    responses((status = 200, body = Message), (status = 400, description = "field errors")))]
async fn change_email(State(state): State<AppState>, auth: AuthUser, body: Body) -> ApiResult<axum::Json<Message>> {
    let mut f = Fields::new(body);
    let new_email = email_field(&mut f, "new_email");
    f.finish()?;
    let Some(new_email) = new_email else {
        return Err(ApiError::non_field("Invalid data."));
    };
    if new_email.as_str() == auth.user.email {
        return Err(ApiError::field("new_email", "This is already your email address."));
    }
    if users::find_by_email(&state.db, new_email.as_str()).await?.is_some() {
        return Err(ApiError::field("new_email", EMAIL_TAKEN));
    }
    let token = new_token();
    let t = now();
    let user = &auth.user;
    let mut tx = state.db.begin().await?;
    tokens::insert_action(
        &mut tx,
        &NewActionToken {
            token_hash: &token_hash(&token),
            user_id: &user.id,
            purpose: Purpose::EmailChange,
            new_email: Some(new_email.as_str()),
            now: t,
            expires_at: t + state.settings.link_ttl,
        },
    )
    .await?;
    let link = state.settings.frontend_link("change_email_confirm", &[("id", &user.encrypted_id), ("token", &token)]);
    let mail = mail::email_change(&user.first_name, &link, state.settings.link_ttl.num_minutes());
    mail::queue(&mut tx, Some(&user.id), new_email.as_str(), mail, state.settings.job_max_attempts).await?;
    tx.commit().await?;
    state.wake_worker.notify_one();
    Ok(message("A confirmation link has been sent to the new email address."))
}

/// Follow the emailed link: the new address becomes the account's email.
#[utoipa::path(post, path = "/v1/user/change/email/confirm/{encrypted_id}/{token}", tag = "user",
    params(("encrypted_id" = String, Path), ("token" = String, Path)),
    responses((status = 200, body = Message), (status = 400, description = "bad or expired link")))]
async fn confirm_email_change(
    State(state): State<AppState>,
    Path((encrypted_id, token)): Path<(String, String)>,
) -> ApiResult<axum::Json<Message>> {
    const BAD_LINK: &str = "The link is not correct or has expired.";
    let Some(user) = users::find_by_encrypted_id(&state.db, &encrypted_id).await? else {
        return Err(ApiError::non_field(BAD_LINK));
    };
    let mut tx = state.db.begin().await?;
    let Some(Some(new_email)) =
        tokens::consume_action(&mut tx, &token_hash(&token), &user.id, Purpose::EmailChange, now()).await?
    else {
        return Err(ApiError::non_field(BAD_LINK));
    };
    match users::set_email(&mut tx, &user.id, &new_email, now()).await {
        Err(StoreError::Conflict(_)) => return Err(ApiError::non_field(EMAIL_TAKEN)),
        other => other?,
    }
    tx.commit().await?;
    state.sessions.forget_user(&user.id);
    Ok(message("Your email address has been changed."))
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ChangePasswordRequest {
    current_password: String,
    new_password1: String,
    new_password2: String,
}

/// Change the password; other sessions are signed out, this one stays.
#[utoipa::path(post, path = "/v1/user/change/password", tag = "user", security(("token" = [])), request_body = ChangePasswordRequest,
    responses((status = 200, body = Message), (status = 400, description = "wrong current password or mismatch")))]
async fn change_password(State(state): State<AppState>, auth: AuthUser, body: Body) -> ApiResult<axum::Json<Message>> {
    let mut f = Fields::new(body);
    let current = f.required_secret("current_password");
    let new1 = password_field(&mut f, "new_password1");
    let new2 = f.required_secret("new_password2");
    if let (Some(a), Some(b)) = (&new1, &new2)
        && a.expose() != b
    {
        f.error("new_password2", "The two password fields didn't match.");
    }
    f.finish()?;
    let (Some(current), Some(new1)) = (current, new1) else {
        return Err(ApiError::non_field("Invalid data."));
    };
    if !crypto::verify_password(current, Some(auth.user.password_hash.clone())).await? {
        return Err(ApiError::field("current_password", "Current password is not correct."));
    }
    let hash = crypto::hash_password(new1.expose().to_owned()).await?;
    let mut tx = state.db.begin().await?;
    users::set_password_hash(&mut tx, &auth.user.id, &hash, now()).await?;
    tokens::delete_other_sessions(&mut tx, &auth.user.id, &auth.token_hash).await?;
    tx.commit().await?;
    state.sessions.forget_user(&auth.user.id);
    Ok(message("Your password has been changed."))
}

/// Send the sign-up confirmation link again (a new one; the old one stops working).
#[utoipa::path(get, path = "/v1/user/resend_reg_confirmation_link", tag = "user", security(("token" = [])),
    responses((status = 200, body = Message), (status = 400, description = "already confirmed")))]
async fn resend_confirmation_link(State(state): State<AppState>, auth: AuthUser) -> ApiResult<axum::Json<Message>> {
    let user = &auth.user;
    if user.is_confirmed {
        return Err(ApiError::non_field("Registration already has been confirmed."));
    }
    let confirmation = new_token();
    let mut tx = state.db.begin().await?;
    users::set_confirmation_token(&mut tx, &user.id, &token_hash(&confirmation), now()).await?;
    let link = state.settings.frontend_link("confirm", &[("id", &user.encrypted_id), ("token", &confirmation)]);
    mail::queue(
        &mut tx,
        Some(&user.id),
        &user.email,
        mail::signup_confirmation(&user.first_name, &link),
        state.settings.job_max_attempts,
    )
    .await?;
    tx.commit().await?;
    state.wake_worker.notify_one();
    Ok(message("The confirmation link has been sent."))
}

/// Close the account: round-ups stop; the user can still sign in and read.
#[utoipa::path(post, path = "/v1/user_close_account", tag = "user", security(("token" = [])), responses((status = 204)))]
async fn close_account(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    users::close_account(&state.db, &auth.user.id, now()).await?;
    state.sessions.forget_user(&auth.user.id);
    tracing::info!(user = %auth.user.id, "account closed");
    Ok(StatusCode::NO_CONTENT)
}
