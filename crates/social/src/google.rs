//! Google Sign-In: OAuth 2 authorization code with OpenID Connect ID tokens.
//!
//! The browser is sent to [`GoogleClient::login_url`] and comes back with a
//! `code`; [`GoogleClient::exchange_code`] trades it for tokens and
//! [`GoogleClient::verify_id_token`] checks the ID token (RS256 signature
//! against Google's published keys, issuer, audience, expiry) and reads the
//! identity from it. The keys are cached in memory and fetched again when a
//! token names a key we do not know — at most once per
//! [`GoogleConfig::jwks_min_refresh`] — or when they are older than
//! [`GoogleConfig::jwks_max_age`].

pub mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use url::Url;

use crate::http::{self, Reply, Result};
use crate::{ExposeSecret, SecretString, SocialError};
use wire::{
    AuthQuery, ErrorBody, GRANT_TYPE_AUTHORIZATION_CODE, ID_TOKEN_ALG, IdTokenClaims, Jwk, Jwks, JwtHeader,
    LOGIN_SCOPE, TRANSIENT_ERRORS, TokenRequest, TokenResponse,
};

const PROVIDER: &str = "google";
/// Keys shorter than this are ignored.
const MIN_KEY_BITS: usize = 2048;

/// Where Google is and which OAuth client we are.
#[derive(Clone, Debug)]
pub struct GoogleConfig {
    /// The consent screen: `https://accounts.google.com/o/oauth2/v2/auth`.
    pub auth_url: Url,
    /// The token endpoint: `https://oauth2.googleapis.com/token`.
    pub token_url: Url,
    /// The signing keys: `https://www.googleapis.com/oauth2/v3/certs`.
    pub jwks_url: Url,
    /// The `iss` ID tokens must carry. Google's is `https://accounts.google.com`;
    /// the same without `https://` is accepted too, as Google documents.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Limit for a whole request, from connecting to the last body byte.
    pub timeout: Duration,
    /// Clock skew tolerated when checking `exp` and `iat`.
    pub leeway: Duration,
    /// Least time between two fetches of the keys caused by unknown key ids.
    pub jwks_min_refresh: Duration,
    /// Keys older than this are fetched again before use.
    pub jwks_max_age: Duration,
}

impl GoogleConfig {
    pub const DEFAULT_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
    pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
    pub const DEFAULT_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
    pub const DEFAULT_ISSUER: &str = "https://accounts.google.com";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
    pub const DEFAULT_JWKS_MIN_REFRESH: Duration = Duration::from_secs(60);
    pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(6 * 60 * 60);

    /// The real Google, for this OAuth client.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<SecretString>) -> Self {
        let url = |s: &str| Url::parse(s).expect("a valid default url");
        Self {
            auth_url: url(Self::DEFAULT_AUTH_URL),
            token_url: url(Self::DEFAULT_TOKEN_URL),
            jwks_url: url(Self::DEFAULT_JWKS_URL),
            issuer: Self::DEFAULT_ISSUER.to_owned(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            timeout: Self::DEFAULT_TIMEOUT,
            leeway: Self::DEFAULT_LEEWAY,
            jwks_min_refresh: Self::DEFAULT_JWKS_MIN_REFRESH,
            jwks_max_age: Self::DEFAULT_JWKS_MAX_AGE,
        }
    }

    /// All three endpoints under `base_url`, at Google's paths
    /// (`o/oauth2/v2/auth`, `token`, `oauth2/v3/certs`), as a simulator serves them.
    pub fn with_base_url(mut self, base_url: &Url) -> Self {
        self.auth_url = http::join(base_url, &["o", "oauth2", "v2", "auth"]);
        self.token_url = http::join(base_url, &["token"]);
        self.jwks_url = http::join(base_url, &["oauth2", "v3", "certs"]);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn accepts_issuer(&self, iss: &str) -> bool {
        let bare = |s: &'_ str| s.strip_prefix("https://").unwrap_or(s).to_owned();
        iss == self.issuer || (bare(iss) == bare(&self.issuer) && !iss.starts_with("http://"))
    }
}

/// What the code exchange returns.
#[derive(Clone, Debug)]
pub struct GoogleTokens {
    pub access_token: SecretString,
    /// The signed JWT to give [`GoogleClient::verify_id_token`].
    pub id_token: SecretString,
    pub expires_in: Option<u64>,
}

/// Who signed in, from a verified ID token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoogleIdentity {
    /// Google's stable account id.
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

/// The Google client. Cheap to clone; clones share a connection pool and
/// the key cache.
#[derive(Clone)]
pub struct GoogleClient {
    http: reqwest::Client,
    config: GoogleConfig,
    keys: Arc<Mutex<KeyCache>>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Instant>,
}

impl fmt::Debug for GoogleClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleClient").field("config", &self.config).finish_non_exhaustive()
    }
}

impl GoogleClient {
    pub fn new(config: GoogleConfig) -> Result<Self> {
        http::check_url(PROVIDER, "auth_url", &config.auth_url)?;
        http::check_url(PROVIDER, "token_url", &config.token_url)?;
        http::check_url(PROVIDER, "jwks_url", &config.jwks_url)?;
        Ok(Self { http: http::client(PROVIDER, config.timeout)?, config, keys: Arc::default() })
    }

    pub fn config(&self) -> &GoogleConfig {
        &self.config
    }

    /// The consent screen to send the browser to. It comes back to
    /// `redirect_uri` with `code` and `state` (omitted when empty).
    pub fn login_url(&self, redirect_uri: &str, state: &str) -> String {
        let mut url = self.config.auth_url.clone();
        let query = AuthQuery {
            client_id: self.config.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            response_type: "code".to_owned(),
            scope: LOGIN_SCOPE.to_owned(),
            state: (!state.is_empty()).then(|| state.to_owned()),
        };
        url.set_query(serde_urlencoded::to_string(&query).ok().as_deref());
        url.into()
    }

    /// Trades the consent screen's `code` for tokens. `redirect_uri` must be
    /// the one the consent screen was opened with.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<GoogleTokens> {
        let form = TokenRequest {
            code: code.to_owned(),
            client_id: self.config.client_id.clone(),
            client_secret: self.config.client_secret.expose_secret().to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            grant_type: GRANT_TYPE_AUTHORIZATION_CODE.to_owned(),
        };
        let request = self.http.post(self.config.token_url.clone()).form(&form);
        let reply = http::send(PROVIDER, &self.http, request).await?;
        if !reply.is_success() {
            return Err(token_error(&reply));
        }
        let tokens: TokenResponse = reply.json(PROVIDER)?;
        let id_token = tokens
            .id_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SocialError::invalid("google: the token response has no id_token (openid scope?)"))?;
        Ok(GoogleTokens {
            access_token: SecretString::from(tokens.access_token),
            id_token: SecretString::from(id_token),
            expires_in: tokens.expires_in,
        })
    }

    /// Checks an ID token and returns who it identifies: RS256 signature by
    /// one of Google's keys, `iss`, `aud` = our client id, not expired. The
    /// signature, `aud` and `exp` are checked by `jsonwebtoken`.
    pub async fn verify_id_token(&self, id_token: &str) -> Result<GoogleIdentity> {
        let mut parts = id_token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SocialError::invalid("google: the id token is not a JWT"));
        };
        // Read before any key is fetched, so that a token naming another algorithm (`none`
        // included, which `jsonwebtoken` cannot even name) is refused as such.
        let header: JwtHeader = decode_part(header_b64, "header")?;
        if header.alg != ID_TOKEN_ALG {
            return Err(SocialError::rejected(format!(
                "google: id token signed with {:?}; only {ID_TOKEN_ALG} is accepted",
                header.alg
            )));
        }
        let kid = header.kid.ok_or_else(|| SocialError::rejected("google: id token names no signing key"))?;
        let key = self.key(&kid).await?;
        let claims =
            jsonwebtoken::decode::<IdTokenClaims>(id_token, &key, &self.validation()).map_err(id_token_error)?.claims;
        self.check_claims(&claims, unix_now())?;
        Ok(GoogleIdentity {
            sub: claims.sub,
            email: claims.email,
            email_verified: claims.email_verified.unwrap_or(false),
            given_name: claims.given_name,
            family_name: claims.family_name,
        })
    }

    /// What `jsonwebtoken` checks: RS256 only, issued to our client, not expired (with the
    /// configured leeway), and the claims we read present.
    fn validation(&self) -> Validation {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = self.config.leeway.as_secs();
        validation
    }

    /// [`Self::exchange_code`] then [`Self::verify_id_token`].
    pub async fn sign_in(&self, code: &str, redirect_uri: &str) -> Result<GoogleIdentity> {
        let tokens = self.exchange_code(code, redirect_uri).await?;
        self.verify_id_token(tokens.id_token.expose_secret()).await
    }

    /// What `jsonwebtoken` does not check: the issuer (in either of Google's spellings, named
    /// in the refusal), an issue time not in the future, a subject.
    fn check_claims(&self, claims: &IdTokenClaims, now: i64) -> Result<()> {
        if !self.config.accepts_issuer(&claims.iss) {
            return Err(SocialError::rejected(format!(
                "google: id token issued by {:?}, expected {:?}",
                claims.iss, self.config.issuer
            )));
        }
        let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(i64::MAX);
        if claims.iat.saturating_sub(leeway) > now {
            return Err(SocialError::rejected("google: id token was issued in the future"));
        }
        if claims.sub.is_empty() {
            return Err(SocialError::invalid("google: id token without a subject"));
        }
        Ok(())
    }

    /// The key `kid` from the cache, fetching the key set when it is stale,
    /// or when `kid` is unknown and the last fetch is old enough.
    async fn key(&self, kid: &str) -> Result<DecodingKey> {
        let mut cache = self.keys.lock().await;
        let age = cache.fetched_at.map(|at| at.elapsed());
        let stale = age.is_none_or(|age| age >= self.config.jwks_max_age);
        if !stale && let Some(key) = cache.keys.get(kid) {
            return Ok(key.clone());
        }
        if stale || age.is_none_or(|age| age >= self.config.jwks_min_refresh) {
            match self.fetch_keys().await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                Err(error) => match cache.keys.get(kid) {
                    // Stale but known: better than failing every sign-in.
                    Some(key) => {
                        tracing::warn!(%error, "google keys could not be refreshed; using cached ones");
                        return Ok(key.clone());
                    }
                    None => return Err(error),
                },
            }
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| SocialError::rejected(format!("google: id token signed by unknown key {kid:?}")))
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, DecodingKey>> {
        let request = self.http.get(self.config.jwks_url.clone());
        let reply = http::send(PROVIDER, &self.http, request).await?;
        if !reply.is_success() {
            let message = format!("google: signing keys: {}", reply.text_excerpt());
            return Err(match reply.status {
                429 | 500..=599 => SocialError::from_status(&reply, message),
                _ => SocialError::Invalid { message },
            });
        }
        let jwks: Jwks = reply.json(PROVIDER)?;
        let keys: HashMap<String, DecodingKey> =
            jwks.keys.iter().filter_map(|jwk| Some((jwk.kid.clone(), rsa_key(jwk)?))).collect();
        if keys.is_empty() {
            return Err(SocialError::invalid("google: no usable RS256 signing keys"));
        }
        tracing::debug!(keys = keys.len(), "fetched google signing keys");
        Ok(keys)
    }
}

/// The RSA public key of a JWK meant for RS256 signatures, if it is one.
fn rsa_key(jwk: &Jwk) -> Option<DecodingKey> {
    if jwk.kty != "RSA"
        || jwk.kid.is_empty()
        || jwk.alg.as_deref().is_some_and(|alg| alg != ID_TOKEN_ALG)
        || jwk.usage.as_deref().is_some_and(|usage| usage != "sig")
    {
        return None;
    }
    let modulus = URL_SAFE_NO_PAD.decode(&jwk.n).ok()?;
    let significant = modulus.iter().skip_while(|byte| **byte == 0).count();
    if significant * 8 < MIN_KEY_BITS {
        return None;
    }
    DecodingKey::from_rsa_components(&jwk.n, &jwk.e).ok()
}

/// Why `jsonwebtoken` refused an ID token, in the terms of [`SocialError`].
fn id_token_error(error: JwtError) -> SocialError {
    match error.kind() {
        ErrorKind::InvalidSignature => SocialError::rejected("google: id token signature does not verify"),
        ErrorKind::ExpiredSignature => SocialError::rejected("google: id token has expired"),
        ErrorKind::InvalidAudience => SocialError::rejected("google: id token was issued to another client (aud)"),
        ErrorKind::InvalidAlgorithm => SocialError::rejected(format!(
            "google: id token not signed with {ID_TOKEN_ALG}; only {ID_TOKEN_ALG} is accepted"
        )),
        ErrorKind::MissingRequiredClaim(claim) => SocialError::invalid(format!("google: id token without {claim}")),
        _ => SocialError::invalid(format!("google: unreadable id token: {error}")),
    }
}

fn decode_part<T: DeserializeOwned>(part: &str, what: &str) -> Result<T> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| SocialError::invalid(format!("google: unreadable id token {what}")))?;
    serde_json::from_slice(&bytes).map_err(|e| SocialError::invalid(format!("google: unreadable id token {what}: {e}")))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// A token endpoint error: outages are `Unavailable`, every other error
/// (`invalid_grant`, `invalid_client` …) is `Rejected`.
fn token_error(reply: &Reply) -> SocialError {
    let Ok(body) = serde_json::from_slice::<ErrorBody>(&reply.body) else {
        return SocialError::from_status(reply, format!("google: {}", reply.text_excerpt()));
    };
    let message = match &body.error_description {
        Some(description) => format!("google: {}: {description}", body.error),
        None => format!("google: {}", body.error),
    };
    if TRANSIENT_ERRORS.contains(&body.error.as_str()) {
        SocialError::Unavailable { message }
    } else {
        SocialError::from_status(reply, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::Audience;

    fn client() -> GoogleClient {
        GoogleClient::new(GoogleConfig::new("client.apps", "client-secret-value")).unwrap()
    }

    fn claims(now: i64) -> IdTokenClaims {
        IdTokenClaims {
            iss: "https://accounts.google.com".into(),
            azp: None,
            aud: Audience::One("client.apps".into()),
            sub: "1".into(),
            email: None,
            email_verified: None,
            at_hash: None,
            iat: now,
            exp: now + 3600,
            name: None,
            given_name: None,
            family_name: None,
            picture: None,
            locale: None,
        }
    }

    #[test]
    fn both_spellings_of_googles_issuer_are_accepted() {
        let client = client();
        let now = 1_700_000_000;
        assert!(client.check_claims(&claims(now), now).is_ok());
        let bare = IdTokenClaims { iss: "accounts.google.com".into(), ..claims(now) };
        assert!(client.check_claims(&bare, now).is_ok());
        for iss in ["http://accounts.google.com", "https://evil.example.com"] {
            let other = IdTokenClaims { iss: iss.into(), ..claims(now) };
            assert!(matches!(client.check_claims(&other, now), Err(SocialError::Rejected { .. })));
        }
    }

    #[test]
    fn issue_time_allows_a_minute_of_skew() {
        let client = client();
        let now = 1_700_000_000;
        assert!(client.check_claims(&claims(now + 30), now).is_ok());
        assert!(client.check_claims(&claims(now + 120), now).is_err());
    }

    #[test]
    fn expiry_allows_a_minute_of_skew_and_the_audience_must_be_ours() {
        let client = client();
        let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
        let mut unsigned = client.validation();
        unsigned.insecure_disable_signature_validation();
        let check = |claims: &IdTokenClaims| {
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS256),
                claims,
                &jsonwebtoken::EncodingKey::from_secret(b"k"),
            )
            .unwrap();
            jsonwebtoken::decode::<IdTokenClaims>(&token, &DecodingKey::from_secret(b"other"), &unsigned)
                .map_err(id_token_error)
        };
        assert!(check(&claims(now)).is_ok());
        assert!(check(&IdTokenClaims { exp: now - 30, ..claims(now - 3600) }).is_ok());
        let expired = check(&IdTokenClaims { exp: now - 61, ..claims(now - 3600) });
        assert!(
            matches!(&expired, Err(SocialError::Rejected { message }) if message.contains("expired")),
            "{expired:?}"
        );
        let other = check(&IdTokenClaims { aud: Audience::Many(vec!["someone.else".into()]), ..claims(now) });
        assert!(matches!(&other, Err(SocialError::Rejected { message }) if message.contains("another client")));
        let ours =
            IdTokenClaims { aud: Audience::Many(vec!["someone.else".into(), "client.apps".into()]), ..claims(now) };
        assert!(check(&ours).is_ok());
    }

    #[test]
    fn login_url_asks_for_a_code_with_openid_scopes() {
        let url = Url::parse(&client().login_url("https://donkies.co/login_google", "s1")).unwrap();
        assert_eq!(url.path(), "/o/oauth2/v2/auth");
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], "client.apps");
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["scope"], "openid email profile");
        assert_eq!(query["state"], "s1");
        assert_eq!(query["redirect_uri"], "https://donkies.co/login_google");
    }

    #[test]
    fn debug_output_never_shows_the_client_secret() {
        assert!(!format!("{:?}", client()).contains("client-secret-value"));
    }

    #[tokio::test]
    async fn tokens_with_other_algorithms_or_shapes_are_refused_before_any_fetch() {
        // Nothing listens there: a fetch of the keys would be Unavailable.
        let config = GoogleConfig::new("client.apps", "s")
            .with_base_url(&Url::parse("http://127.0.0.1:9/").unwrap())
            .with_timeout(Duration::from_secs(2));
        let client = GoogleClient::new(config).unwrap();
        let part = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let hs256 = format!("{}.{}.c2ln", part(r#"{"alg":"HS256","kid":"k"}"#), part("{}"));
        assert!(matches!(client.verify_id_token(&hs256).await, Err(SocialError::Rejected { .. })));
        let none = format!("{}.{}.", part(r#"{"alg":"none"}"#), part("{}"));
        assert!(matches!(client.verify_id_token(&none).await, Err(SocialError::Rejected { .. })));
        assert!(matches!(client.verify_id_token("a.b").await, Err(SocialError::Invalid { .. })));
    }
}
