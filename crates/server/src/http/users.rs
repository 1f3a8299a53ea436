//! The signed-in user: profile, settings, email and password changes, closing the account.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use donkies_domain::{
    Cap, Cents, DateOfBirth, Email, Multiplier, OverdraftFloor, Password, Phone, PostalCode, Ssn, TransferAmount,
    UsState,
};
use donkies_store::now;
use donkies_store::payments::Customer;
use donkies_store::users::User;

use super::AppState;
use super::error::ApiResult;
use super::extract::{AuthUser, TextPaths};
use super::input::{Check, Field, RequestBody, Valid};
use super::payments::UserCustomer;
use crate::services::money::{RoundUpSettings, SettingsChange, settings_of};
use crate::services::profile::Profile;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_user, update_user))
        .routes(routes!(get_user_settings, update_user_settings))
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
    id: i64,
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
    dwolla_customer: Option<UserCustomer>,
    is_profile_completed: bool,
    minimum_transfer_amount: i64,
    is_even_roundup: bool,
    is_closed_account: bool,
    total_debt: f64,
    signup_steps: Option<serde_json::Value>,
    is_signup_completed: bool,
    profile_image_url: Option<String>,
}

impl UserView {
    pub fn new(u: User, total_debt: Cents, customer: Option<&Customer>) -> Self {
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
            dwolla_customer: customer.map(UserCustomer::from),
            is_profile_completed: u.is_profile_completed,
            minimum_transfer_amount: u.minimum_transfer_amount.get(),
            is_even_roundup: u.is_even_roundup,
            is_closed_account: u.is_closed_account,
            total_debt: total_debt.to_f64_dollars(),
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
async fn get_user(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    let user_id = auth.user.id;
    state
        .kept(user_id, "user".into(), &headers, move |state| async move {
            // Read now, not taken from the session: a change may have committed since.
            let user = state.services.identity.user(user_id).await?;
            let total_debt = state.services.accounts.total_debt(user.id).await?;
            let customer = state.services.payments.customer(user.id).await?;
            let view = UserView::new(user, total_debt, customer.as_ref());
            Ok(serde_json::to_vec(&view).map_err(anyhow::Error::from)?)
        })
        .await
}

#[derive(Default, Deserialize, ToSchema)]
pub struct ProfileRequest {
    #[schema(value_type = Option<String>, max_length = 150)]
    #[serde(default)]
    first_name: Field<String>,
    #[schema(value_type = Option<String>, max_length = 150)]
    #[serde(default)]
    last_name: Field<String>,
    /// 10 digits.
    #[schema(value_type = Option<String>, pattern = "^[0-9]{10}$")]
    #[serde(default)]
    phone: Field<String>,
    #[schema(value_type = Option<String>, max_length = 255)]
    #[serde(default)]
    address1: Field<String>,
    #[schema(value_type = Option<String>, max_length = 255)]
    #[serde(default)]
    address2: Field<String>,
    #[schema(value_type = Option<String>, max_length = 100)]
    #[serde(default)]
    city: Field<String>,
    /// US state code.
    #[schema(value_type = Option<String>, pattern = "^[A-Z]{2}$")]
    #[serde(default)]
    state: Field<String>,
    /// 5 digits.
    #[schema(value_type = Option<String>, pattern = "^[0-9]{5}$")]
    #[serde(default)]
    postal_code: Field<String>,
    /// YYYY-MM-DD, 18 or older.
    #[schema(value_type = Option<String>, format = Date)]
    #[serde(default)]
    date_of_birth: Field<String>,
    /// XXX-XX-XXXX
    #[schema(value_type = Option<String>, pattern = "^[0-9]{3}-[0-9]{2}-[0-9]{4}$")]
    #[serde(default)]
    ssn: Field<String>,
}

impl Check {
    /// An optional string of at most `max` characters, trimmed.
    fn short_text(&mut self, name: &str, field: Field<String>, max: usize) -> Option<String> {
        let value = self.optional(name, field)?.trim().to_owned();
        if value.chars().count() > max {
            self.error(name, format!("Ensure this field has no more than {max} characters."));
            return None;
        }
        Some(value)
    }

    /// An optional value for a domain parser, trimmed.
    fn parsed<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        field: Field<String>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let raw = self.optional(name, field);
        self.parse(name, raw, |s| parse(s.trim()))
    }
}

impl RequestBody for ProfileRequest {
    type Parsed = Profile;
    fn parse(self, c: &mut Check) -> Option<Profile> {
        let today = now().date_naive();
        let first_name = c.short_text("first_name", self.first_name, 150);
        let last_name = c.short_text("last_name", self.last_name, 150);
        for (field, value) in [("first_name", &first_name), ("last_name", &last_name)] {
            if value.as_deref() == Some("") {
                c.error(field, "This field may not be blank.");
            }
        }
        Some(Profile {
            first_name,
            last_name,
            phone: c.parsed("phone", self.phone, Phone::parse),
            address1: c.short_text("address1", self.address1, 255).filter(|s| !s.is_empty()),
            address2: c.short_text("address2", self.address2, 255),
            city: c.short_text("city", self.city, 100).filter(|s| !s.is_empty()),
            state: c.parsed("state", self.state, UsState::parse),
            postal_code: c.parsed("postal_code", self.postal_code, PostalCode::parse),
            date_of_birth: c.parsed("date_of_birth", self.date_of_birth, |s| DateOfBirth::parse(s, today)),
            ssn: c.parsed("ssn", self.ssn, Ssn::parse),
        })
    }
}

/// Fill in the profile. Once every field is present the profile is complete and frozen.
#[utoipa::path(put, path = "/v1/user", tag = "user", security(("token" = [])), request_body = Option<ProfileRequest>,
    responses((status = 200, body = UserView), (status = 400, description = "field errors, or the profile is complete")))]
async fn update_user(
    State(state): State<AppState>,
    auth: AuthUser,
    Valid(profile): Valid<ProfileRequest>,
) -> ApiResult<axum::Json<UserView>> {
    let user = state.services.identity.update_profile(&auth.user, profile).await?;
    let total_debt = state.services.accounts.total_debt(user.id).await?;
    let customer = state.services.payments.customer(user.id).await?;
    Ok(axum::Json(UserView::new(user, total_debt, customer.as_ref())))
}

/// The user's round-up settings.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UserSettings {
    /// One of 5, 10, 20, 50, 100: the smallest held total paid out on the payout day.
    minimum_transfer_amount: i64,
    /// Round a whole-dollar purchase up by a full dollar.
    is_even_roundup: bool,
    /// While paused, purchases give no round-up.
    roundups_paused: bool,
    /// One of 1, 2, 3, 5, 10: each round-up is multiplied by it.
    roundup_multiplier: i64,
    /// Whole dollars collected from the user's bank in one UTC day at most; null: no cap.
    daily_cap: Option<i64>,
    /// Whole dollars collected in one UTC month at most; null: no cap.
    monthly_cap: Option<i64>,
    /// Whole dollars a collection must leave available in the round-up source account
    /// (0 to 10000, default 100); a collection that would go below it waits.
    overdraft_floor: i64,
}

impl From<RoundUpSettings> for UserSettings {
    fn from(s: RoundUpSettings) -> Self {
        UserSettings {
            minimum_transfer_amount: s.minimum_transfer_amount,
            is_even_roundup: s.is_even_roundup,
            roundups_paused: s.roundups_paused,
            roundup_multiplier: s.roundup_multiplier,
            daily_cap: s.daily_cap,
            monthly_cap: s.monthly_cap,
            overdraft_floor: s.overdraft_floor,
        }
    }
}

#[derive(Default, Deserialize, ToSchema)]
pub struct SettingsRequest {
    /// One of 5, 10, 20, 50, 100.
    #[schema(value_type = Option<i64>)]
    #[serde(default)]
    minimum_transfer_amount: Field<i64>,
    #[schema(value_type = Option<bool>)]
    #[serde(default)]
    is_even_roundup: Field<bool>,
    #[schema(value_type = Option<bool>)]
    #[serde(default)]
    roundups_paused: Field<bool>,
    /// One of 1, 2, 3, 5, 10.
    #[schema(value_type = Option<i64>)]
    #[serde(default)]
    roundup_multiplier: Field<i64>,
    /// Whole dollars from 10 to 100000, or 0 to remove the cap.
    #[schema(value_type = Option<i64>)]
    #[serde(default)]
    daily_cap: Field<i64>,
    /// Whole dollars from 10 to 100000, or 0 to remove the cap.
    #[schema(value_type = Option<i64>)]
    #[serde(default)]
    monthly_cap: Field<i64>,
    /// Whole dollars from 0 to 10000.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 10000)]
    #[serde(default)]
    overdraft_floor: Field<i64>,
}

/// A cap as sent: 0 removes it.
fn parse_cap(dollars: i64) -> Result<Option<Cap>, donkies_domain::ProfileError> {
    if dollars == 0 { Ok(None) } else { Cap::parse_dollars(dollars).map(Some) }
}

impl RequestBody for SettingsRequest {
    type Parsed = SettingsChange;
    fn parse(self, c: &mut Check) -> Option<Self::Parsed> {
        let amount = c.optional("minimum_transfer_amount", self.minimum_transfer_amount);
        let amount = c.parse("minimum_transfer_amount", amount, TransferAmount::parse);
        let multiplier = c.optional("roundup_multiplier", self.roundup_multiplier);
        let multiplier = c.parse("roundup_multiplier", multiplier, Multiplier::parse);
        let daily = c.optional("daily_cap", self.daily_cap);
        let daily_cap = c.parse("daily_cap", daily, parse_cap);
        let monthly = c.optional("monthly_cap", self.monthly_cap);
        let monthly_cap = c.parse("monthly_cap", monthly, parse_cap);
        let floor = c.optional("overdraft_floor", self.overdraft_floor);
        let overdraft_floor = c.parse("overdraft_floor", floor, OverdraftFloor::parse_dollars);
        Some(SettingsChange {
            minimum_transfer_amount: amount,
            is_even_roundup: c.optional("is_even_roundup", self.is_even_roundup),
            roundups_paused: c.optional("roundups_paused", self.roundups_paused),
            roundup_multiplier: multiplier,
            daily_cap,
            monthly_cap,
            overdraft_floor,
        })
    }
}

/// The round-up settings.
#[utoipa::path(get, path = "/v1/user_settings", tag = "user", security(("token" = [])),
    responses((status = 200, body = UserSettings)))]
async fn get_user_settings(auth: AuthUser) -> axum::Json<UserSettings> {
    axum::Json(settings_of(&auth.user).into())
}

/// Change the round-up settings; only the fields sent change.
#[utoipa::path(patch, path = "/v1/user_settings", tag = "user", security(("token" = [])), request_body = Option<SettingsRequest>,
    responses((status = 200, body = UserSettings), (status = 400, description = "field errors")))]
async fn update_user_settings(
    State(state): State<AppState>,
    auth: AuthUser,
    Valid(change): Valid<SettingsRequest>,
) -> ApiResult<axum::Json<UserSettings>> {
    Ok(axum::Json(state.services.money.update_settings(&auth.user, change).await?.into()))
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

#[derive(Default, Deserialize, ToSchema)]
pub struct ChangeEmailRequest {
    #[schema(value_type = String, format = Email, required = true)]
    #[serde(default)]
    new_email: Field<String>,
}

impl RequestBody for ChangeEmailRequest {
    type Parsed = Email;
    fn parse(self, c: &mut Check) -> Option<Email> {
        c.email("new_email", self.new_email)
    }
}

/// Mail a confirmation link to the new address; the email changes when it is followed.
#[utoipa::path(post, path = "/v1/user/change/email", tag = "user", security(("token" = [])), request_body = ChangeEmailRequest,
    responses((status = 200, body = Message), (status = 400, description = "field errors")))]
async fn change_email(
    State(state): State<AppState>,
    auth: AuthUser,
    Valid(new_email): Valid<ChangeEmailRequest>,
) -> ApiResult<axum::Json<Message>> {
    state.services.identity.request_email_change(&auth.user, &new_email).await?;
    Ok(message("A confirmation link has been sent to the new email address."))
}

/// Follow the emailed link: the new address becomes the account's email.
#[utoipa::path(post, path = "/v1/user/change/email/confirm/{encrypted_id}/{token}", tag = "user",
    params(("encrypted_id" = String, Path), ("token" = String, Path)),
    responses((status = 200, body = Message), (status = 400, description = "bad or expired link")))]
async fn confirm_email_change(
    State(state): State<AppState>,
    TextPaths(encrypted_id, token): TextPaths,
) -> ApiResult<axum::Json<Message>> {
    state.services.identity.confirm_email_change(&encrypted_id, &token).await?;
    Ok(message("Your email address has been changed."))
}

#[derive(Default, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password, required = true)]
    #[serde(default)]
    current_password: Field<String>,
    #[schema(value_type = String, format = Password, min_length = 8, required = true)]
    #[serde(default)]
    new_password1: Field<String>,
    #[schema(value_type = String, format = Password, required = true)]
    #[serde(default)]
    new_password2: Field<String>,
}

impl RequestBody for ChangePasswordRequest {
    type Parsed = (String, Password);
    fn parse(self, c: &mut Check) -> Option<(String, Password)> {
        let current = c.secret("current_password", self.current_password);
        let new1 = c.new_password("new_password1", self.new_password1);
        let new2 = c.secret("new_password2", self.new_password2);
        if let (Some(a), Some(b)) = (&new1, &new2)
            && a.expose() != b
        {
            c.error("new_password2", "The two password fields didn't match.");
        }
        Some((current?, new1?))
    }
}

/// Change the password; other sessions are signed out, this one stays.
#[utoipa::path(post, path = "/v1/user/change/password", tag = "user", security(("token" = [])), request_body = ChangePasswordRequest,
    responses((status = 200, body = Message), (status = 400, description = "wrong current password or mismatch")))]
async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    Valid((current, new)): Valid<ChangePasswordRequest>,
) -> ApiResult<axum::Json<Message>> {
    state.services.identity.change_password(auth.user.id, &auth.token_hash, current, new).await?;
    Ok(message("Your password has been changed."))
}

/// Send the sign-up confirmation link again (a new one; the old one stops working).
#[utoipa::path(get, path = "/v1/user/resend_reg_confirmation_link", tag = "user", security(("token" = [])),
    responses((status = 200, body = Message), (status = 400, description = "already confirmed")))]
async fn resend_confirmation_link(State(state): State<AppState>, auth: AuthUser) -> ApiResult<axum::Json<Message>> {
    state.services.identity.resend_confirmation(&auth.user).await?;
    Ok(message("The confirmation link has been sent."))
}

/// Close the account: round-ups stop; the user can still sign in and read.
#[utoipa::path(post, path = "/v1/user_close_account", tag = "user", security(("token" = [])), responses((status = 204)))]
async fn close_account(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    state.services.money.close_account(auth.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
