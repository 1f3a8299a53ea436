//! The JSON and query strings of the Facebook Graph API login flow (v2.8).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The Graph API version the client speaks.
pub const API_VERSION: &str = "v2.8";
/// The profile fields the client asks `/me` for.
pub const PROFILE_FIELDS: &str = "id,email,first_name,last_name";
/// The permissions the login dialog asks for (the public profile is implied).
pub const LOGIN_SCOPE: &str = "email";

/// Query of `GET /v2.8/dialog/oauth` (on www.facebook.com).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialogQuery {
    pub client_id: String,
    pub redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
}

/// Query of `GET /v2.8/oauth/access_token`: trades a code for a token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenQuery {
    pub client_id: String,
    pub redirect_uri: String,
    pub client_secret: String,
    pub code: String,
}

impl fmt::Debug for AccessTokenQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenQuery")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("client_secret", &"***")
            .field("code", &"***")
            .finish()
    }
}

/// Answer of `/oauth/access_token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenResponse {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

impl fmt::Debug for AccessTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenResponse")
            .field("access_token", &"***")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Query of `GET /v2.8/me`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileQuery {
    #[serde(default)]
    pub fields: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

impl fmt::Debug for ProfileQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileQuery")
            .field("fields", &self.fields)
            .field("access_token", &self.access_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The user as `/me?fields=id,email,first_name,last_name` returns them.
/// `email` is absent when the user has none or declined the permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacebookProfile {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
}

/// Every Graph API error: `{"error": {"message", "type", "code", …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    /// `OAuthException`, `GraphMethodException` …
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_subcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
}

/// Graph error codes that mean "try again later" rather than "no".
pub const TRANSIENT_ERROR_CODES: [i64; 4] = [2, 4, 17, 341];

impl ErrorBody {
    pub fn new(kind: &str, code: i64, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.to_owned(),
                code,
                error_subcode: None,
                fbtrace_id: None,
            },
        }
    }

    /// An `OAuthException`, the type of every login error.
    pub fn oauth(code: i64, message: impl Into<String>) -> Self {
        Self::new("OAuthException", code, message)
    }
}
