//! The forms and JSON of Twitter's OAuth 1.0a sign-in and
//! `account/verify_credentials`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Answer of `POST /oauth/request_token` (form-encoded).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestTokenResponse {
    pub oauth_token: String,
    pub oauth_token_secret: String,
    /// `"true"` when the callback was accepted (OAuth 1.0a).
    #[serde(default)]
    pub oauth_callback_confirmed: String,
}

impl fmt::Debug for RequestTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestTokenResponse")
            .field("oauth_token", &self.oauth_token)
            .field("oauth_token_secret", &"***")
            .field("oauth_callback_confirmed", &self.oauth_callback_confirmed)
            .finish()
    }
}

/// Query of `GET /oauth/authenticate`, and of the redirect back to the
/// callback (`oauth_token`, `oauth_verifier`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateQuery {
    pub oauth_token: String,
}

/// The redirect to the app's callback after the user approved (or `denied`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_verifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied: Option<String>,
}

/// Answer of `POST /oauth/access_token` (form-encoded).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenResponse {
    pub oauth_token: String,
    pub oauth_token_secret: String,
    pub user_id: String,
    pub screen_name: String,
}

impl fmt::Debug for AccessTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenResponse")
            .field("oauth_token", &self.oauth_token)
            .field("oauth_token_secret", &"***")
            .field("user_id", &self.user_id)
            .field("screen_name", &self.screen_name)
            .finish()
    }
}

/// Query of `GET /1.1/account/verify_credentials.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyCredentialsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_email: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_status: Option<bool>,
}

/// The user object (the fields we read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub id_str: String,
    pub name: String,
    pub screen_name: String,
    /// Only with `include_email=true`, for apps allowed to ask, and users
    /// with a (confirmed) address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Every error of the v1.1 API: `{"errors": [{"code", "message"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorsBody {
    pub errors: Vec<ErrorItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorItem {
    pub code: i64,
    pub message: String,
}

impl ErrorsBody {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { errors: vec![ErrorItem { code, message: message.into() }] }
    }
}

/// Code 32: "Could not authenticate you." (bad signature or credentials).
pub const COULD_NOT_AUTHENTICATE: i64 = 32;
/// Code 89: "Invalid or expired token."
pub const INVALID_OR_EXPIRED_TOKEN: i64 = 89;
/// Code 135: "Timestamp out of bounds."
pub const TIMESTAMP_OUT_OF_BOUNDS: i64 = 135;
/// Code 130: "Over capacity."
pub const OVER_CAPACITY: i64 = 130;
