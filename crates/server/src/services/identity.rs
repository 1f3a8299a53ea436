//! Accounts and sessions: one `create_user` for sign-ups by email and through a sign-in
//! provider, confirmation, sign-in and sign-out.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use donkies_domain::{Email, Password};
use donkies_store::users::{NewUser, User};
use donkies_store::{constraints, new_id, now, tokens, users};

use super::outbox::queue_mail;
use super::payments::PaymentsService;
use super::settings::IdentitySettings;
use super::social::SignInProviders;
use super::{Change, ServiceError, ServiceResult, Storage, Work};
use crate::crypto::Sealer;
use crate::crypto::{self, new_token, token_hash};
use crate::jobs::banking::CreateAggregatorUser;
use crate::mail;

pub const EMAIL_TAKEN: &str = "User with this email already exists.";
pub const BAD_LOGIN: &str = "Email or password is not correct.";

/// A user about to be created.
pub struct NewAccount<'a> {
    pub email: &'a Email,
    /// Argon2id PHC string, or an unusable hash for provider-only accounts.
    pub password_hash: String,
    pub first_name: &'a str,
    pub last_name: &'a str,
    /// The address is already proven (by a sign-in provider): no confirmation mail.
    pub confirmed: bool,
}

/// What to do when the email is taken.
#[derive(Debug)]
pub enum Created {
    User(i64),
    EmailTaken,
}

/// Who the user is: sign-up, sign-in (with a password or a social provider), sessions,
/// passwords and the profile. They reach the sign-in providers, and the payment rail only
/// through the payments service (a completed profile becomes a customer); never the aggregator.
#[derive(Clone)]
pub struct IdentityService(Arc<IdentityInner>);

pub struct IdentityInner {
    pub store: Storage,
    pub sealer: Sealer,
    pub social: SignInProviders,
    pub payments: PaymentsService,
    pub settings: IdentitySettings,
}

impl Deref for IdentityService {
    type Target = IdentityInner;
    fn deref(&self) -> &IdentityInner {
        &self.0
    }
}

impl IdentityService {
    pub fn new(
        store: Storage,
        sealer: Sealer,
        social: SignInProviders,
        payments: PaymentsService,
        settings: IdentitySettings,
    ) -> Self {
        IdentityService(Arc::new(IdentityInner { store, sealer, social, payments, settings }))
    }

    /// Create a user inside `work`: the confirmation mail (unless confirmed) and the aggregator
    /// user job go with it, whichever way the user signed up.
    pub async fn create_user(&self, work: &mut Work, account: NewAccount<'_>) -> ServiceResult<Created> {
        let id = new_id();
        let encrypted_id = new_token();
        let confirmation = new_token();
        let inserted = users::insert(
            work,
            &NewUser {
                id,
                email: account.email.as_str(),
                password_hash: &account.password_hash,
                first_name: account.first_name,
                last_name: account.last_name,
                identifier: &new_token(),
                encrypted_id: &encrypted_id,
                confirmation_token_hash: &token_hash(&confirmation),
                now: now(),
            },
        )
        .await;
        match inserted {
            Err(e) if e.on_constraint(constraints::USERS_EMAIL) => return Ok(Created::EmailTaken),
            other => other?,
        }
        if account.confirmed {
            users::mark_confirmed(work, id, now()).await?;
        } else {
            let link = self.settings.frontend.link("confirm", &[("id", &encrypted_id), ("token", &confirmation)]);
            let message = mail::signup_confirmation(account.first_name, &link);
            queue_mail(work, &self.sealer, Some(id), account.email.as_str(), message).await?;
        }
        work.enqueue(&CreateAggregatorUser { user_id: id }, Duration::ZERO).await?;
        Ok(Created::User(id))
    }

    /// Sign up with email and password; the confirmation link is mailed.
    pub async fn sign_up(
        &self,
        email: &Email,
        password: Password,
        first_name: &str,
        last_name: &str,
    ) -> ServiceResult<()> {
        let password_hash = crypto::hash_password(password.expose().to_owned()).await?;
        let mut work = self.store.begin().await?;
        let account = NewAccount { email, password_hash, first_name, last_name, confirmed: false };
        match self.create_user(&mut work, account).await? {
            Created::EmailTaken => Err(ServiceError::field("email", EMAIL_TAKEN)),
            Created::User(id) => {
                work.commit().await?;
                tracing::info!(user = %id, "user signed up");
                Ok(())
            }
        }
    }

    /// Confirm the address with the mailed link's values; answers a new session token.
    pub async fn confirm_sign_up(&self, encrypted_id: &str, token: &str) -> ServiceResult<String> {
        let Some(user) = users::find_by_encrypted_id(&self.store.db, encrypted_id).await? else {
            return Err(ServiceError::field("encrypted_id", "Provided id is not correct"));
        };
        if user.is_confirmed {
            return Err(ServiceError::invalid("Registration already has been confirmed."));
        }
        let mut work = self.store.begin().await?;
        if !users::confirm(&mut work, user.id, &token_hash(token), now()).await? {
            return Err(ServiceError::invalid("Provided confirmation token is not correct"));
        }
        let session = self.start_session(&mut work, user.id).await?;
        work.changed(Change::User(user.id));
        work.commit().await?;
        Ok(session)
    }

    /// Sign in with email and password: a new session token. Unknown email and wrong password
    /// get the same answer, after the same work.
    pub async fn log_in(&self, email: &str, password: String) -> ServiceResult<String> {
        let user = users::find_by_email(&self.store.db, email).await?;
        let ok = crypto::verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
        let Some(user) = user.filter(|_| ok) else {
            return Err(ServiceError::invalid(BAD_LOGIN));
        };
        self.issue_token(user.id).await
    }

    /// Start a session: a new random token, of which only the hash is stored.
    pub async fn issue_token(&self, user_id: i64) -> ServiceResult<String> {
        let mut work = self.store.begin().await?;
        let token = self.start_session(&mut work, user_id).await?;
        work.commit().await?;
        Ok(token)
    }

    /// [`IdentityService::issue_token`] as part of `work`.
    async fn start_session(&self, work: &mut Work, user_id: i64) -> ServiceResult<String> {
        let token = new_token();
        let t = now();
        tokens::insert_session(work, &token_hash(&token), user_id, t, t + self.settings.token_ttl).await?;
        Ok(token)
    }

    /// The user behind a session token hash and when the token expires.
    pub async fn session(&self, token_hash: &str) -> ServiceResult<Option<(User, chrono::DateTime<chrono::Utc>)>> {
        Ok(users::find_by_token_hash(&self.store.db, token_hash).await?)
    }

    pub async fn user(&self, user_id: i64) -> ServiceResult<User> {
        users::find_by_id(&self.store.db, user_id).await?.ok_or(ServiceError::NotFound)
    }

    /// Every session of the user ends.
    pub async fn log_out(&self, user_id: i64) -> ServiceResult<()> {
        let mut work = self.store.begin().await?;
        tokens::delete_sessions(&mut work, user_id).await?;
        work.changed(Change::User(user_id));
        work.commit().await?;
        Ok(())
    }
}
