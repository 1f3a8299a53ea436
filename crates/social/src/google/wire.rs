//! The JSON and forms of Google's OAuth 2 / OpenID Connect sign-in.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// `grant_type` of a code exchange.
pub const GRANT_TYPE_AUTHORIZATION_CODE: &str = "authorization_code";
/// The scopes the consent screen asks for.
pub const LOGIN_SCOPE: &str = "openid email profile";
/// The only signing algorithm accepted for ID tokens.
pub const ID_TOKEN_ALG: &str = "RS256";

/// Query of the consent screen (`GET /o/oauth2/v2/auth`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthQuery {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_type: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// Form of `POST /token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub grant_type: String,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("code", &"***")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("redirect_uri", &self.redirect_uri)
            .field("grant_type", &self.grant_type)
            .finish()
    }
}

/// Answer of `POST /token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Present when the `openid` scope was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"***")
            .field("id_token", &self.id_token.as_ref().map(|_| "***"))
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// An OAuth 2 error (RFC 6749 §5.2): `{"error": "invalid_grant", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl ErrorBody {
    pub fn new(error: &str, description: &str) -> Self {
        Self { error: error.to_owned(), error_description: Some(description.to_owned()) }
    }
}

/// OAuth error codes that mean "try again later".
pub const TRANSIENT_ERRORS: [&str; 2] = ["temporarily_unavailable", "server_error"];

/// The signing keys (`GET /oauth2/v3/certs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One public key; only RSA keys are of use to us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    #[serde(default)]
    pub kid: String,
    /// Modulus, base64url big-endian.
    #[serde(default)]
    pub n: String,
    /// Public exponent, base64url big-endian.
    #[serde(default)]
    pub e: String,
}

/// The JOSE header of an ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtHeader {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

/// The claims of a Google ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    pub aud: Audience,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A boolean; some older tokens carry the string `"true"`.
    #[serde(default, deserialize_with = "bool_or_string", skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// `aud`: one client id (Google's form) or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, client_id: &str) -> bool {
        match self {
            Self::One(aud) => aud == client_id,
            Self::Many(auds) => auds.iter().any(|aud| aud == client_id),
        }
    }
}

fn bool_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<Flag>::deserialize(deserializer)? {
        None => None,
        Some(Flag::Bool(flag)) => Some(flag),
        Some(Flag::Text(text)) => Some(text.eq_ignore_ascii_case("true")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_read_google_tokens_both_old_and_new() {
        let claims: IdTokenClaims = serde_json::from_str(
            r#"{"iss":"accounts.google.com","aud":"a","sub":"1","iat":1,"exp":2,"email_verified":"true"}"#,
        )
        .unwrap();
        assert_eq!(claims.email_verified, Some(true));
        assert!(claims.aud.contains("a"));
        let claims: IdTokenClaims = serde_json::from_str(
            r#"{"iss":"https://accounts.google.com","aud":["a","b"],"sub":"1","iat":1,"exp":2,"email_verified":false}"#,
        )
        .unwrap();
        assert_eq!(claims.email_verified, Some(false));
        assert!(claims.aud.contains("b") && !claims.aud.contains("c"));
    }
}
