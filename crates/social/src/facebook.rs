//! Facebook Login: the OAuth 2 authorization-code flow of the Graph API.
//!
//! The browser is sent to [`FacebookClient::login_url`]; Facebook sends it
//! back to `redirect_uri` with a `code`, which [`FacebookClient::exchange_code`]
//! trades for an access token, and [`FacebookClient::me`] reads the profile.

pub mod wire;

use std::time::Duration;

use url::Url;

use crate::http::{self, Reply, Result};
use crate::{ExposeSecret, SecretString, SocialError};
use wire::{
    API_VERSION, AccessTokenQuery, AccessTokenResponse, DialogQuery, ErrorBody, FacebookProfile, LOGIN_SCOPE,
    PROFILE_FIELDS, TRANSIENT_ERROR_CODES,
};

const PROVIDER: &str = "facebook";

/// Where Facebook is and which app we are.
#[derive(Clone, Debug)]
pub struct FacebookConfig {
    /// The Graph API: `https://graph.facebook.com`, or a simulator.
    pub graph_url: Url,
    /// Where the login dialog lives: `https://www.facebook.com`, or a
    /// simulator. [`FacebookClient::login_url`] appends `/v2.8/dialog/oauth`.
    pub dialog_url: Url,
    pub app_id: String,
    pub app_secret: SecretString,
    /// Limit for a whole request, from connecting to the last body byte.
    pub timeout: Duration,
}

impl FacebookConfig {
    pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com";
    pub const DEFAULT_DIALOG_URL: &str = "https://www.facebook.com";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// The real Facebook, for this app.
    pub fn new(app_id: impl Into<String>, app_secret: impl Into<SecretString>) -> Self {
        Self {
            graph_url: Url::parse(Self::DEFAULT_GRAPH_URL).expect("a valid default url"),
            dialog_url: Url::parse(Self::DEFAULT_DIALOG_URL).expect("a valid default url"),
            app_id: app_id.into(),
            app_secret: app_secret.into(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Graph API and dialog both at `base_url` (a simulator serves both).
    pub fn with_base_url(mut self, base_url: Url) -> Self {
        self.graph_url = base_url.clone();
        self.dialog_url = base_url;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The Facebook client. Cheap to clone; clones share a connection pool.
#[derive(Clone, Debug)]
pub struct FacebookClient {
    http: reqwest::Client,
    config: FacebookConfig,
}

impl FacebookClient {
    pub fn new(config: FacebookConfig) -> Result<Self> {
        http::check_url(PROVIDER, "graph_url", &config.graph_url)?;
        http::check_url(PROVIDER, "dialog_url", &config.dialog_url)?;
        Ok(Self { http: http::client(PROVIDER, config.timeout)?, config })
    }

    pub fn config(&self) -> &FacebookConfig {
        &self.config
    }

    /// The login dialog to send the browser to. It comes back to
    /// `redirect_uri` with `code` and `state` (omitted when empty).
    pub fn login_url(&self, redirect_uri: &str, state: &str) -> String {
        let mut url = http::join(&self.config.dialog_url, &[API_VERSION, "dialog", "oauth"]);
        let query = DialogQuery {
            client_id: self.config.app_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            state: (!state.is_empty()).then(|| state.to_owned()),
            scope: Some(LOGIN_SCOPE.to_owned()),
            response_type: None,
        };
        url.set_query(serde_urlencoded::to_string(&query).ok().as_deref());
        url.into()
    }

    /// Trades the dialog's `code` for a user access token. `redirect_uri`
    /// must be the one the dialog was opened with.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<SecretString> {
        let url = http::join(&self.config.graph_url, &[API_VERSION, "oauth", "access_token"]);
        let query = AccessTokenQuery {
            client_id: self.config.app_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            client_secret: self.config.app_secret.expose_secret().to_owned(),
            code: code.to_owned(),
        };
        let reply = self.get(url, &query).await?;
        let token: AccessTokenResponse = reply.json(PROVIDER)?;
        if token.access_token.is_empty() {
            return Err(SocialError::invalid("facebook: empty access token"));
        }
        Ok(SecretString::from(token.access_token))
    }

    /// The profile of the user the token belongs to.
    pub async fn me(&self, access_token: &str) -> Result<FacebookProfile> {
        let url = http::join(&self.config.graph_url, &[API_VERSION, "me"]);
        let query = [("fields", PROFILE_FIELDS), ("access_token", access_token)];
        let reply = self.get(url, &query).await?;
        let profile: FacebookProfile = reply.json(PROVIDER)?;
        if profile.id.is_empty() {
            return Err(SocialError::invalid("facebook: profile without an id"));
        }
        Ok(profile)
    }

    /// [`Self::exchange_code`] then [`Self::me`].
    pub async fn sign_in(&self, code: &str, redirect_uri: &str) -> Result<FacebookProfile> {
        let token = self.exchange_code(code, redirect_uri).await?;
        self.me(token.expose_secret()).await
    }

    async fn get<Q: serde::Serialize + ?Sized>(&self, url: Url, query: &Q) -> Result<Reply> {
        let reply = http::send(PROVIDER, &self.http, self.http.get(url).query(query)).await?;
        if reply.is_success() { Ok(reply) } else { Err(error(&reply)) }
    }
}

/// A Graph error answer: outages and throttling are `Unavailable`, every
/// other error (bad code, bad secret, bad token) is `Rejected`.
fn error(reply: &Reply) -> SocialError {
    let Ok(body) = serde_json::from_slice::<ErrorBody>(&reply.body) else {
        return SocialError::from_status(reply, format!("facebook: {}", reply.text_excerpt()));
    };
    let detail = body.error;
    let message = format!("facebook: {} ({} {})", detail.message, detail.kind, detail.code);
    if reply.status >= 500 || TRANSIENT_ERROR_CODES.contains(&detail.code) {
        SocialError::Unavailable { message }
    } else {
        SocialError::from_status(reply, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> FacebookClient {
        FacebookClient::new(FacebookConfig::new("1234", "app-secret-value")).unwrap()
    }

    #[test]
    fn login_url_opens_the_dialog_with_app_redirect_state_and_email_scope() {
        let url = Url::parse(&client().login_url("https://donkies.co/login_facebook", "xyz")).unwrap();
        assert_eq!(url.origin().ascii_serialization(), "https://www.facebook.com");
        assert_eq!(url.path(), "/v2.8/dialog/oauth");
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(query.contains(&("client_id".into(), "1234".into())));
        assert!(query.contains(&("redirect_uri".into(), "https://donkies.co/login_facebook".into())));
        assert!(query.contains(&("state".into(), "xyz".into())));
        assert!(query.contains(&("scope".into(), "email".into())));
        let without_state = client().login_url("https://donkies.co/x", "");
        assert!(!without_state.contains("state="));
    }

    #[test]
    fn debug_output_never_shows_the_app_secret() {
        let client = client();
        assert!(!format!("{client:?}").contains("app-secret-value"));
    }

    #[test]
    fn graph_errors_are_classified() {
        let reply = |status, body: &str| Reply { status, body: body.to_owned().into(), retry_after: None };
        let used =
            r#"{"error":{"message":"This authorization code has been used.","type":"OAuthException","code":100}}"#;
        assert!(
            matches!(error(&reply(400, used)), SocialError::Rejected { message } if message.contains("has been used"))
        );
        let down = r#"{"error":{"message":"Service temporarily unavailable","type":"OAuthException","code":2}}"#;
        assert!(matches!(error(&reply(400, down)), SocialError::Unavailable { .. }));
        assert!(matches!(error(&reply(502, "<html>")), SocialError::Unavailable { .. }));
        assert!(matches!(error(&reply(401, "")), SocialError::Rejected { .. }));
    }
}
