//! Sign-in with Facebook, Google and Twitter: the provider exchanges, and finding or creating
//! the user behind a provider account (through the one `create_user`).

use donkies_domain::Email;
use donkies_domain::ExposeSecret;
use donkies_outbound::ProviderFailure;
use donkies_social::{FacebookClient, GoogleClient, SocialError, TwitterClient};
use donkies_store::social::NewIdentity;
use donkies_store::{now, social, tokens, users};

use super::identity::{Created, NewAccount};
use super::{Change, ServiceError, ServiceResult, identity::IdentityService};
use crate::crypto::unusable_password_hash;

/// How long a Twitter request token waits for the user to come back.
const TWITTER_REQUEST_TTL_MINUTES: i64 = 15;

/// The sign-in providers this process offers; `None` where not configured.
#[derive(Clone, Default)]
pub struct SignInProviders {
    pub facebook: Option<FacebookClient>,
    pub google: Option<GoogleClient>,
    pub twitter: Option<TwitterClient>,
}

/// What a provider told us about its user.
pub struct ProviderAccount {
    pub provider: &'static str,
    pub id: String,
    /// Only an address the provider vouches for.
    pub verified_email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub profile: serde_json::Value,
}

/// Where a Twitter sign-in starts.
pub struct TwitterStart {
    pub authorize_url: String,
    pub oauth_token: String,
}

/// The login URLs of the offered providers.
pub struct LoginUrls {
    pub facebook: Option<String>,
    pub google: Option<String>,
}

/// A sign-in provider's failure, told to the user who is signing in (always a 400: the sign-in
/// is theirs to try again).
#[deny(clippy::wildcard_enum_match_arm)]
fn provider_error(provider: &str, err: SocialError) -> ServiceError {
    tracing::info!(provider, error = %err, "sign-in provider refused or failed");
    ServiceError::invalid(match (err.failure(), err) {
        (ProviderFailure::Transient { .. } | ProviderFailure::RateLimited { .. } | ProviderFailure::Auth, _) => {
            format!("{provider} could not be reached. Please try again in a moment.")
        }
        (ProviderFailure::Refused | ProviderFailure::NotFound, SocialError::Invalid { .. }) => {
            format!("{provider} sent an answer we could not read.")
        }
        (
            ProviderFailure::Refused | ProviderFailure::NotFound,
            SocialError::Rejected { message }
            | SocialError::Unavailable { message }
            | SocialError::RateLimited { message, .. },
        ) => format!("{provider} did not accept the sign-in: {message}"),
    })
}

fn linked_identity<'a>(
    account: &'a ProviderAccount,
    profile: &'a str,
    user_id: i64,
    email: Option<&'a str>,
) -> NewIdentity<'a> {
    NewIdentity { provider: account.provider, provider_user_id: &account.id, user_id, email, profile, now: now() }
}

fn not_configured(provider: &str) -> ServiceError {
    ServiceError::invalid(format!("Sign-in with {provider} is not available."))
}

impl IdentityService {
    fn redirect_uri(&self, page: &str) -> String {
        self.settings.frontend.link(page, &[]).trim_end_matches('?').to_owned()
    }

    /// A `state` sent back from a login URL must be one we signed.
    fn check_state(&self, state: Option<&str>) -> ServiceResult<()> {
        match state.filter(|s| !s.is_empty()) {
            Some(given) if !crate::crypto::verify_state(self.settings.secret_key.expose_secret(), given) => {
                Err(ServiceError::field("state", "The sign-in has expired or did not start here; start again."))
            }
            _ => Ok(()),
        }
    }

    /// The provider login URLs, redirecting to `<frontend>/login_facebook` and `login_google`.
    pub fn login_urls(&self) -> LoginUrls {
        let signed = crate::crypto::sign_state(self.settings.secret_key.expose_secret());
        LoginUrls {
            facebook: self.social.facebook.as_ref().map(|c| c.login_url(&self.redirect_uri("login_facebook"), &signed)),
            google: self.social.google.as_ref().map(|c| c.login_url(&self.redirect_uri("login_google"), &signed)),
        }
    }

    /// Sign in with a Facebook authorization code; answers a session token.
    pub async fn facebook_sign_in(
        &self,
        code: &str,
        redirect_uri: Option<&str>,
        state: Option<&str>,
        typed_email: Option<&Email>,
    ) -> ServiceResult<String> {
        self.check_state(state)?;
        let client = self.social.facebook.as_ref().ok_or_else(|| not_configured("Facebook"))?;
        let redirect = redirect_uri.map_or_else(|| self.redirect_uri("login_facebook"), str::to_owned);
        let profile = client.sign_in(code, &redirect).await.map_err(|e| provider_error("Facebook", e))?;
        let account = ProviderAccount {
            provider: "facebook",
            id: profile.id.clone(),
            // Facebook only shares confirmed addresses.
            verified_email: profile.email.clone(),
            first_name: profile.first_name.clone(),
            last_name: profile.last_name.clone(),
            profile: serde_json::to_value(&profile).unwrap_or_default(),
        };
        self.finish_sign_in(&account, typed_email, "Facebook").await
    }

    /// Sign in with a Google authorization code (OpenID Connect; the ID token is verified).
    pub async fn google_sign_in(
        &self,
        code: &str,
        redirect_uri: Option<&str>,
        state: Option<&str>,
        typed_email: Option<&Email>,
    ) -> ServiceResult<String> {
        self.check_state(state)?;
        let client = self.social.google.as_ref().ok_or_else(|| not_configured("Google"))?;
        let redirect = redirect_uri.map_or_else(|| self.redirect_uri("login_google"), str::to_owned);
        let identity = client.sign_in(code, &redirect).await.map_err(|e| provider_error("Google", e))?;
        let account = ProviderAccount {
            provider: "google",
            id: identity.sub.clone(),
            verified_email: identity.email.clone().filter(|_| identity.email_verified),
            first_name: identity.given_name.clone().unwrap_or_default(),
            last_name: identity.family_name.clone().unwrap_or_default(),
            profile: serde_json::json!({
                "sub": identity.sub, "email": identity.email, "email_verified": identity.email_verified,
                "given_name": identity.given_name, "family_name": identity.family_name,
            }),
        };
        self.finish_sign_in(&account, typed_email, "Google").await
    }

    /// Start a Twitter sign-in: a request token (its secret kept sealed) and where the user
    /// approves it.
    pub async fn twitter_request_token(&self) -> ServiceResult<TwitterStart> {
        let client = self.social.twitter.as_ref().ok_or_else(|| not_configured("Twitter"))?;
        let callback = self.redirect_uri("login_twitter");
        let token = client.request_token(&callback).await.map_err(|e| provider_error("Twitter", e))?;
        let sealed = self.sealer.seal(token.oauth_token_secret.expose_secret());
        let t = now();
        let expires = t + chrono::Duration::minutes(TWITTER_REQUEST_TTL_MINUTES);
        let mut work = self.store.begin().await?;
        social::save_request(&mut work, &token.oauth_token, "twitter", &sealed, t, expires).await?;
        work.commit().await?;
        Ok(TwitterStart { authorize_url: client.authorize_url(&token.oauth_token), oauth_token: token.oauth_token })
    }

    /// Finish a Twitter sign-in with the values Twitter sent back to the front end.
    pub async fn twitter_sign_in(
        &self,
        token: &str,
        verifier: &str,
        typed_email: Option<&Email>,
    ) -> ServiceResult<String> {
        let client = self.social.twitter.as_ref().ok_or_else(|| not_configured("Twitter"))?;
        let mut work = self.store.begin().await?;
        let taken = social::take_request(&mut work, token, "twitter", now()).await?;
        work.commit().await?;
        let Some(sealed) = taken else {
            return Err(ServiceError::invalid("This Twitter sign-in has expired or was already used; start again."));
        };
        let secret = self
            .sealer
            .open(&sealed)
            .ok_or_else(|| ServiceError::invalid("This Twitter sign-in cannot be finished; start again."))?;
        let access = client.access_token(token, &secret, verifier).await.map_err(|e| provider_error("Twitter", e))?;
        let profile = client
            .verify_credentials(&access.oauth_token, access.oauth_token_secret.expose_secret())
            .await
            .map_err(|e| provider_error("Twitter", e))?;
        let (first_name, last_name) = match profile.name.split_once(' ') {
            Some((first, last)) => (first.to_owned(), last.to_owned()),
            None => (profile.name.clone(), String::new()),
        };
        let account = ProviderAccount {
            provider: "twitter",
            id: profile.id.clone(),
            // Twitter shares only addresses it has verified, and only with permission.
            verified_email: profile.email.clone(),
            first_name,
            last_name,
            profile: serde_json::json!({ "id": profile.id, "name": profile.name, "screen_name": profile.screen_name, "email": profile.email }),
        };
        self.finish_sign_in(&account, typed_email, "Twitter").await
    }

    async fn finish_sign_in(
        &self,
        account: &ProviderAccount,
        typed_email: Option<&Email>,
        provider: &str,
    ) -> ServiceResult<String> {
        let user_id = self.find_or_create_user(account, typed_email, provider).await?;
        self.issue_token(user_id).await
    }

    /// Find the user behind a provider account: by the linked identity, else by the verified
    /// email (linking the identity), else create one. `typed_email` is an address the user
    /// entered because the provider gave none; such an account starts unconfirmed and gets the
    /// usual confirmation mail.
    pub async fn find_or_create_user(
        &self,
        account: &ProviderAccount,
        typed_email: Option<&Email>,
        provider: &str,
    ) -> ServiceResult<i64> {
        let profile = account.profile.to_string();
        let identity = |user_id, email| linked_identity(account, &profile, user_id, email);
        if let Some(found) = social::find(&self.store.db, account.provider, &account.id).await? {
            let mut work = self.store.begin().await?;
            social::link(&mut work, &identity(found.user_id, account.verified_email.as_deref())).await?;
            work.commit().await?;
            return Ok(found.user_id);
        }
        let verified = account.verified_email.as_deref().and_then(|e| Email::parse(e).ok());
        if let Some(email) = &verified
            && let Some(user) = users::find_by_email(&self.store.db, email.as_str()).await?
        {
            let mut work = self.store.begin().await?;
            social::link(&mut work, &identity(user.id, Some(email.as_str()))).await?;
            if !user.is_confirmed {
                // Nobody proved owning this address before: whoever signed up with it may not be
                // its owner, who proves it now through the provider. Their password and sessions
                // must not carry over into the owner's account (a reset link sets a new password).
                users::set_password_hash(&mut work, user.id, &unusable_password_hash(), now()).await?;
                tokens::delete_sessions(&mut work, user.id).await?;
                users::mark_confirmed(&mut work, user.id, now()).await?;
            }
            work.changed(Change::User(user.id));
            work.commit().await?;
            return Ok(user.id);
        }
        let (email, confirmed) = match (&verified, typed_email) {
            (Some(email), _) => (email.clone(), true),
            (None, Some(typed)) => (typed.clone(), false),
            (None, None) => {
                return Err(ServiceError::field(
                    "email",
                    format!(
                        "{provider} did not share a verified email address. Ask the user for one and send it as \"email\" with a new sign-in."
                    ),
                ));
            }
        };
        let mut work = self.store.begin().await?;
        let new = NewAccount {
            email: &email,
            password_hash: unusable_password_hash(),
            first_name: &account.first_name,
            last_name: &account.last_name,
            confirmed,
        };
        let id = match self.create_user(&mut work, new).await? {
            Created::User(id) => id,
            Created::EmailTaken => {
                return Err(ServiceError::field(
                    "email",
                    "An account with this email already exists. Sign in with its password instead.",
                ));
            }
        };
        social::link(&mut work, &identity(id, verified.as_ref().map(Email::as_str))).await?;
        work.commit().await?;
        tracing::info!(user = %id, provider = account.provider, "user signed up through a sign-in provider");
        Ok(id)
    }
}
