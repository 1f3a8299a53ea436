//! Sign in with Twitter: the OAuth 1.0a three-legged flow.
//!
//! [`TwitterClient::request_token`] gets a request token for our callback;
//! the browser goes to [`TwitterClient::authorize_url`] and comes back with
//! `oauth_token` and `oauth_verifier`, which [`TwitterClient::access_token`]
//! trades (with the request token's secret) for the user's access token;
//! [`TwitterClient::verify_credentials`] reads the profile. Every request
//! is signed with [`crate::oauth1`].

pub mod wire;

use std::time::Duration;

use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use url::Url;

use crate::http::{self, Reply, Result};
use crate::oauth1::{self, Credentials};
use crate::{ExposeSecret, SecretString, SocialError};
use wire::{AccessTokenResponse, ErrorsBody, RequestTokenResponse, User, VerifyCredentialsQuery};

const PROVIDER: &str = "twitter";

/// Where Twitter is and which app (consumer) we are.
#[derive(Clone, Debug)]
pub struct TwitterConfig {
    /// `https://api.twitter.com`, or a simulator.
    pub api_url: Url,
    pub consumer_key: String,
    pub consumer_secret: SecretString,
    /// Limit for a whole request, from connecting to the last body byte.
    pub timeout: Duration,
}

impl TwitterConfig {
    pub const DEFAULT_API_URL: &str = "https://api.twitter.com";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// The real Twitter, for this app.
    pub fn new(consumer_key: impl Into<String>, consumer_secret: impl Into<SecretString>) -> Self {
        Self {
            api_url: Url::parse(Self::DEFAULT_API_URL).expect("a valid default url"),
            consumer_key: consumer_key.into(),
            consumer_secret: consumer_secret.into(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    pub fn with_base_url(mut self, api_url: Url) -> Self {
        self.api_url = api_url;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A request token: `oauth_token` goes to the browser, the secret stays
/// with us until [`TwitterClient::access_token`].
#[derive(Clone, Debug)]
pub struct RequestToken {
    pub oauth_token: String,
    pub oauth_token_secret: SecretString,
}

/// The user's access token and who they are.
#[derive(Clone, Debug)]
pub struct TwitterAccessToken {
    pub oauth_token: String,
    pub oauth_token_secret: SecretString,
    pub user_id: String,
    pub screen_name: String,
}

/// The signed-in user's profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwitterProfile {
    /// Twitter's numeric user id, as a string (`id_str`).
    pub id: String,
    pub name: String,
    pub screen_name: String,
    /// Only for apps allowed to ask for it, and users who have one.
    pub email: Option<String>,
}

/// The Twitter client. Cheap to clone; clones share a connection pool.
#[derive(Clone, Debug)]
pub struct TwitterClient {
    http: reqwest::Client,
    config: TwitterConfig,
}

impl TwitterClient {
    pub fn new(config: TwitterConfig) -> Result<Self> {
        http::check_url(PROVIDER, "api_url", &config.api_url)?;
        Ok(Self { http: http::client(PROVIDER, config.timeout)?, config })
    }

    pub fn config(&self) -> &TwitterConfig {
        &self.config
    }

    /// Asks for a request token; Twitter will send the browser back to
    /// `callback_url` (it must confirm it, as OAuth 1.0a requires).
    pub async fn request_token(&self, callback_url: &str) -> Result<RequestToken> {
        let url = http::join(&self.config.api_url, &["oauth", "request_token"]);
        let reply = self.signed(Method::POST, url, None, &[("oauth_callback", callback_url)]).await?;
        let token: RequestTokenResponse = reply.form(PROVIDER)?;
        if token.oauth_callback_confirmed != "true" {
            return Err(SocialError::invalid("twitter: the callback was not confirmed (oauth_callback_confirmed)"));
        }
        if token.oauth_token.is_empty() {
            return Err(SocialError::invalid("twitter: empty request token"));
        }
        Ok(RequestToken {
            oauth_token: token.oauth_token,
            oauth_token_secret: SecretString::from(token.oauth_token_secret),
        })
    }

    /// Where to send the browser to approve the request token ("Sign in
    /// with Twitter": a user who approved before is sent straight back).
    pub fn authorize_url(&self, oauth_token: &str) -> String {
        let mut url = http::join(&self.config.api_url, &["oauth", "authenticate"]);
        url.query_pairs_mut().append_pair("oauth_token", oauth_token);
        url.into()
    }

    /// Trades an approved request token and its verifier for the user's
    /// access token.
    pub async fn access_token(
        &self,
        oauth_token: &str,
        oauth_token_secret: &str,
        oauth_verifier: &str,
    ) -> Result<TwitterAccessToken> {
        let url = http::join(&self.config.api_url, &["oauth", "access_token"]);
        let reply = self
            .signed(Method::POST, url, Some((oauth_token, oauth_token_secret)), &[("oauth_verifier", oauth_verifier)])
            .await?;
        let token: AccessTokenResponse = reply.form(PROVIDER)?;
        if token.user_id.is_empty() || token.oauth_token.is_empty() {
            return Err(SocialError::invalid("twitter: access token answer without a token or user id"));
        }
        Ok(TwitterAccessToken {
            oauth_token: token.oauth_token,
            oauth_token_secret: SecretString::from(token.oauth_token_secret),
            user_id: token.user_id,
            screen_name: token.screen_name,
        })
    }

    /// The profile of the access token's user, with the email address when
    /// the app may see it.
    pub async fn verify_credentials(&self, oauth_token: &str, oauth_token_secret: &str) -> Result<TwitterProfile> {
        let mut url = http::join(&self.config.api_url, &["1.1", "account", "verify_credentials.json"]);
        let query = VerifyCredentialsQuery { include_email: Some(true), skip_status: Some(true) };
        url.set_query(serde_urlencoded::to_string(&query).ok().as_deref());
        let reply = self.signed(Method::GET, url, Some((oauth_token, oauth_token_secret)), &[]).await?;
        let user: User = reply.json(PROVIDER)?;
        if user.id_str.is_empty() {
            return Err(SocialError::invalid("twitter: user without an id"));
        }
        Ok(TwitterProfile {
            id: user.id_str,
            name: user.name,
            screen_name: user.screen_name,
            email: user.email.filter(|email| !email.is_empty()),
        })
    }

    /// Sends a request without a body, signed with the consumer and `token`
    /// (`(token, secret)`); `extra` are further `oauth_*` parameters.
    async fn signed(
        &self,
        method: Method,
        url: Url,
        token: Option<(&str, &str)>,
        extra: &[(&str, &str)],
    ) -> Result<Reply> {
        let credentials = Credentials {
            consumer_key: &self.config.consumer_key,
            consumer_secret: self.config.consumer_secret.expose_secret(),
            token: token.map(|(token, _)| token),
            token_secret: token.map(|(_, secret)| secret).unwrap_or_default(),
        };
        let request = oauth1::Request { method: method.as_str(), url: &url, form: &[] };
        let oauth = oauth1::authorize(&request, &credentials, extra, &oauth1::nonce(), oauth1::timestamp());
        let mut builder = self.http.request(method.clone(), url).header(AUTHORIZATION, oauth.to_header());
        if method == Method::POST {
            builder = builder.body("");
        }
        let reply = http::send(PROVIDER, &self.http, builder).await?;
        if reply.is_success() { Ok(reply) } else { Err(error(&reply)) }
    }
}

/// A Twitter error answer: 5xx are `Unavailable`, 429 `RateLimited`, the rest
/// (401 "Could not authenticate you", invalid tokens …) `Rejected`.
fn error(reply: &Reply) -> SocialError {
    let message = match serde_json::from_slice::<ErrorsBody>(&reply.body) {
        Ok(body) if !body.errors.is_empty() => {
            body.errors.iter().map(|e| format!("{} ({})", e.message, e.code)).collect::<Vec<_>>().join("; ")
        }
        _ => reply.text_excerpt(),
    };
    SocialError::from_status(reply, format!("twitter: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_carries_the_request_token() {
        let client = TwitterClient::new(TwitterConfig::new("key", "consumer-secret-value")).unwrap();
        assert_eq!(client.authorize_url("tok en"), "https://api.twitter.com/oauth/authenticate?oauth_token=tok+en");
        assert!(!format!("{client:?}").contains("consumer-secret-value"));
    }

    #[test]
    fn twitter_errors_are_classified() {
        let reply = |status, body: &str| Reply { status, body: body.to_owned().into(), retry_after: None };
        let bad = r#"{"errors":[{"code":32,"message":"Could not authenticate you."}]}"#;
        assert!(
            matches!(error(&reply(401, bad)), SocialError::Rejected { message } if message.contains("Could not authenticate you. (32)"))
        );
        assert!(matches!(error(&reply(503, "Over capacity")), SocialError::Unavailable { .. }));
        assert!(matches!(error(&reply(429, "")), SocialError::RateLimited { .. }));
    }
}
