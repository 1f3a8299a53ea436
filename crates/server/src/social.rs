//! Sign-in with Facebook, Google and Twitter: the provider clients this process uses (real, or
//! in-process simulators in sandbox mode) and finding or creating the user behind a provider
//! account.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use donkies_domain::Email;
use donkies_sandbox::{FacebookSim, GoogleSim, TwitterSim};
use donkies_social::{
    FacebookClient, FacebookConfig, GoogleClient, GoogleConfig, SocialError, TwitterClient, TwitterConfig,
};
use donkies_store::social::NewIdentity;
use donkies_store::users::NewUser;
use donkies_store::{StoreError, new_id, now, social, tokens, users};

use crate::config::{Settings, SocialProvider};
use crate::crypto::{new_token, token_hash, unusable_password_hash};
use crate::http::AppState;
use crate::{banking, mail};

const TIMEOUT: Duration = Duration::from_secs(15);

/// The sign-in providers this process offers; `None` where not configured.
#[derive(Clone, Default)]
pub struct Social {
    pub facebook: Option<FacebookClient>,
    pub google: Option<GoogleClient>,
    pub twitter: Option<TwitterClient>,
}

/// Simulators started for sandbox mode; they stop when dropped or shut down.
#[derive(Default)]
pub struct SocialSims {
    facebook: Option<FacebookSim>,
    google: Option<GoogleSim>,
    twitter: Option<TwitterSim>,
}

impl SocialSims {
    pub async fn shutdown(self) {
        if let Some(s) = self.facebook {
            let _ = s.shutdown().await;
        }
        if let Some(s) = self.google {
            let _ = s.shutdown().await;
        }
        if let Some(s) = self.twitter {
            let _ = s.shutdown().await;
        }
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Build the clients the settings ask for, starting simulators in sandbox mode.
pub async fn connect(settings: &Settings) -> anyhow::Result<(Social, SocialSims)> {
    let mut social = Social::default();
    let mut sims = SocialSims::default();
    let invalid = |name: &str, e: SocialError| anyhow::anyhow!("{name} sign-in: {e}");

    let facebook = match &settings.facebook {
        SocialProvider::Remote { url, key, secret } => {
            let mut cfg = FacebookConfig::new(key.clone(), secret.expose().to_owned());
            if let Some(url) = url {
                cfg = cfg.with_base_url(url.clone());
            }
            Some(cfg)
        }
        SocialProvider::Sandbox => {
            let sim =
                FacebookSim::start(loopback(), Default::default()).await.context("starting the Facebook simulator")?;
            let cfg = sim.client_config();
            sims.facebook = Some(sim);
            Some(cfg)
        }
        SocialProvider::Off => None,
    };
    if let Some(cfg) = facebook {
        social.facebook = Some(FacebookClient::new(cfg.with_timeout(TIMEOUT)).map_err(|e| invalid("Facebook", e))?);
    }

    let google = match &settings.google {
        SocialProvider::Remote { url, key, secret } => {
            let mut cfg = GoogleConfig::new(key.clone(), secret.expose().to_owned());
            if let Some(url) = url {
                cfg = cfg.with_base_url(url);
            }
            Some(cfg)
        }
        SocialProvider::Sandbox => {
            let sim =
                GoogleSim::start(loopback(), Default::default()).await.context("starting the Google simulator")?;
            let cfg = sim.client_config();
            sims.google = Some(sim);
            Some(cfg)
        }
        SocialProvider::Off => None,
    };
    if let Some(cfg) = google {
        social.google = Some(GoogleClient::new(cfg.with_timeout(TIMEOUT)).map_err(|e| invalid("Google", e))?);
    }

    let twitter = match &settings.twitter {
        SocialProvider::Remote { url, key, secret } => {
            let mut cfg = TwitterConfig::new(key.clone(), secret.expose().to_owned());
            if let Some(url) = url {
                cfg = cfg.with_base_url(url.clone());
            }
            Some(cfg)
        }
        SocialProvider::Sandbox => {
            let sim =
                TwitterSim::start(loopback(), Default::default()).await.context("starting the Twitter simulator")?;
            let cfg = sim.client_config();
            sims.twitter = Some(sim);
            Some(cfg)
        }
        SocialProvider::Off => None,
    };
    if let Some(cfg) = twitter {
        social.twitter = Some(TwitterClient::new(cfg.with_timeout(TIMEOUT)).map_err(|e| invalid("Twitter", e))?);
    }
    if !sims.is_empty() {
        tracing::info!("sign-in providers without keys are served by in-process simulators");
    }
    Ok((social, sims))
}

impl SocialSims {
    fn is_empty(&self) -> bool {
        self.facebook.is_none() && self.google.is_none() && self.twitter.is_none()
    }
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

/// How signing in ended.
pub enum SignIn {
    User(String),
    /// A new account needs an email address the provider did not give.
    NeedsEmail,
    /// The address the user typed belongs to an existing account, which the provider
    /// cannot vouch for.
    EmailTaken,
}

/// Find the user behind a provider account: by the linked identity, else by the verified
/// email (linking the identity), else create a confirmed user. `typed_email` is an address
/// the user entered because the provider gave none; such an account starts unconfirmed and
/// gets the usual confirmation mail.
pub async fn find_or_create_user(
    state: &AppState,
    account: &ProviderAccount,
    typed_email: Option<&Email>,
) -> anyhow::Result<SignIn> {
    let db = &state.db;
    let profile = account.profile.to_string();
    fn identity<'a>(
        account: &'a ProviderAccount,
        profile: &'a str,
        user_id: &'a str,
        email: Option<&'a str>,
    ) -> NewIdentity<'a> {
        NewIdentity { provider: account.provider, provider_user_id: &account.id, user_id, email, profile, now: now() }
    }
    if let Some(found) = social::find(db, account.provider, &account.id).await? {
        let mut tx = db.begin().await?;
        social::link(&mut tx, &identity(account, &profile, &found.user_id, account.verified_email.as_deref())).await?;
        tx.commit().await?;
        return Ok(SignIn::User(found.user_id));
    }
    let verified = account.verified_email.as_deref().and_then(|e| Email::parse(e).ok());
    if let Some(email) = &verified
        && let Some(user) = users::find_by_email(db, email.as_str()).await?
    {
        let mut tx = db.begin().await?;
        social::link(&mut tx, &identity(account, &profile, &user.id, Some(email.as_str()))).await?;
        if !user.is_confirmed {
            // Nobody proved owning this address before: whoever signed up with it may not be
            // its owner, who proves it now through the provider. Their password and sessions
            // must not carry over into the owner's account (a reset link sets a new password).
            users::set_password_hash(&mut tx, &user.id, &unusable_password_hash(), now()).await?;
            tokens::delete_sessions(&mut tx, &user.id).await?;
            users::mark_confirmed(&mut tx, &user.id, now()).await?;
        }
        tx.commit().await?;
        state.sessions.forget_user(&user.id);
        return Ok(SignIn::User(user.id));
    }
    let (email, confirmed) = match (&verified, typed_email) {
        (Some(email), _) => (email.clone(), true),
        (None, Some(typed)) => (typed.clone(), false),
        (None, None) => return Ok(SignIn::NeedsEmail),
    };
    let id = new_id();
    let encrypted_id = new_token();
    let confirmation = new_token();
    let mut tx = db.begin().await?;
    let inserted = users::insert(
        &mut tx,
        &NewUser {
            id: &id,
            email: email.as_str(),
            password_hash: &unusable_password_hash(),
            first_name: &account.first_name,
            last_name: &account.last_name,
            identifier: &new_token(),
            encrypted_id: &encrypted_id,
            confirmation_token_hash: &token_hash(&confirmation),
            now: now(),
        },
    )
    .await;
    match inserted {
        Err(StoreError::Conflict(_)) => return Ok(SignIn::EmailTaken),
        other => other?,
    }
    social::link(&mut tx, &identity(account, &profile, &id, verified.as_ref().map(Email::as_str))).await?;
    if confirmed {
        users::mark_confirmed(&mut tx, &id, now()).await?;
    } else {
        let link = state.settings.frontend_link("confirm", &[("id", &encrypted_id), ("token", &confirmation)]);
        let message = mail::signup_confirmation(&account.first_name, &link);
        mail::queue(&mut tx, Some(&id), email.as_str(), message, state.settings.job_max_attempts).await?;
    }
    let payload = serde_json::json!({ "user_id": id });
    state.banking.enqueue(&mut tx, banking::CREATE_AGGREGATOR_USER_JOB, payload, Duration::ZERO).await?;
    tx.commit().await?;
    state.wake_worker.notify_one();
    tracing::info!(user = %id, provider = account.provider, "user signed up through a sign-in provider");
    Ok(SignIn::User(id))
}
