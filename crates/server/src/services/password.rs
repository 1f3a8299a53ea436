//! Password reset and change, email change, and sending the confirmation link again.

use donkies_domain::{Email, Password};
use donkies_store::tokens::{NewActionToken, Purpose};
use donkies_store::users::User;
use donkies_store::{constraints, now, tokens, users};

use super::identity::EMAIL_TAKEN;
use super::outbox::queue_mail;
use super::{Change, OnConstraint, ServiceError, ServiceResult, identity::IdentityService};
use crate::crypto::{self, new_token, token_hash};
use crate::mail;

impl IdentityService {
    /// Mail a reset link when the address is known; nothing (and no hint) otherwise.
    pub async fn request_password_reset(&self, email: &Email) -> ServiceResult<()> {
        let Some(user) = users::find_by_email(&self.store.db, email.as_str()).await? else {
            return Ok(());
        };
        let token = new_token();
        let t = now();
        let mut work = self.store.begin().await?;
        let action = NewActionToken {
            token_hash: &token_hash(&token),
            user_id: user.id,
            purpose: Purpose::PasswordReset,
            new_email: None,
            now: t,
            expires_at: t + self.settings.link_ttl,
        };
        tokens::insert_action(&mut work, &action).await?;
        let link = self.settings.frontend.link("reset", &[("id", &user.encrypted_id), ("token", &token)]);
        let message = mail::password_reset(&user.first_name, &link, self.settings.link_ttl.num_minutes());
        queue_mail(&mut work, &self.sealer, Some(user.id), &user.email, message).await?;
        work.commit().await?;
        Ok(())
    }

    /// Set a new password with a reset link's values; the link works once. Every session ends.
    pub async fn reset_password(&self, encrypted_id: &str, token: &str, password: Password) -> ServiceResult<()> {
        let Some(user) = users::find_by_encrypted_id(&self.store.db, encrypted_id).await? else {
            return Err(ServiceError::field("encrypted_id", "Provided id is not correct"));
        };
        let password_hash = crypto::hash_password(password.expose().to_owned()).await?;
        let mut work = self.store.begin().await?;
        let used =
            tokens::consume_action(&mut work, &token_hash(token), user.id, Purpose::PasswordReset, now()).await?;
        if used.is_none() {
            return Err(ServiceError::invalid("Provided reset token is not correct or has expired."));
        }
        users::set_password_hash(&mut work, user.id, &password_hash, now()).await?;
        tokens::delete_sessions(&mut work, user.id).await?;
        work.changed(Change::User(user.id));
        work.commit().await?;
        Ok(())
    }

    /// Change the password; the session `keep_token_hash` stays, the others end. The current
    /// password is checked against the stored hash as it is now, and the new one is written only
    /// if that hash is still the stored one when the change commits: of two changes made at once
    /// with the same current password, one wins and the other is refused.
    pub async fn change_password(
        &self,
        user_id: i64,
        keep_token_hash: &str,
        current: String,
        new: Password,
    ) -> ServiceResult<()> {
        const WRONG: &str = "Current password is not correct.";
        let stored = users::find_by_id(&self.store.db, user_id).await?.ok_or(ServiceError::NotFound)?.password_hash;
        if !crypto::verify_password(current, Some(stored.clone())).await? {
            return Err(ServiceError::field("current_password", WRONG));
        }
        let hash = crypto::hash_password(new.expose().to_owned()).await?;
        let mut work = self.store.begin().await?;
        if !users::replace_password_hash(&mut work, user_id, &stored, &hash, now()).await? {
            return Err(ServiceError::field("current_password", WRONG));
        }
        tokens::delete_other_sessions(&mut work, user_id, keep_token_hash).await?;
        work.changed(Change::User(user_id));
        work.commit().await?;
        Ok(())
    }

    /// Mail a confirmation link to the new address; the email changes when it is followed.
    pub async fn request_email_change(&self, user: &User, new_email: &Email) -> ServiceResult<()> {
        if new_email.as_str() == user.email {
            return Err(ServiceError::field("new_email", "This is already your email address."));
        }
        if users::find_by_email(&self.store.db, new_email.as_str()).await?.is_some() {
            return Err(ServiceError::field("new_email", EMAIL_TAKEN));
        }
        let token = new_token();
        let t = now();
        let mut work = self.store.begin().await?;
        let action = NewActionToken {
            token_hash: &token_hash(&token),
            user_id: user.id,
            purpose: Purpose::EmailChange,
            new_email: Some(new_email.as_str()),
            now: t,
            expires_at: t + self.settings.link_ttl,
        };
        tokens::insert_action(&mut work, &action).await?;
        let link =
            self.settings.frontend.link("change_email_confirm", &[("id", &user.encrypted_id), ("token", &token)]);
        let message = mail::email_change(&user.first_name, &link, self.settings.link_ttl.num_minutes());
        queue_mail(&mut work, &self.sealer, Some(user.id), new_email.as_str(), message).await?;
        work.commit().await?;
        Ok(())
    }

    /// Follow the emailed link: the new address becomes the account's email.
    pub async fn confirm_email_change(&self, encrypted_id: &str, token: &str) -> ServiceResult<()> {
        const BAD_LINK: &str = "The link is not correct or has expired.";
        let Some(user) = users::find_by_encrypted_id(&self.store.db, encrypted_id).await? else {
            return Err(ServiceError::invalid(BAD_LINK));
        };
        let mut work = self.store.begin().await?;
        let Some(Some(new_email)) =
            tokens::consume_action(&mut work, &token_hash(token), user.id, Purpose::EmailChange, now()).await?
        else {
            return Err(ServiceError::invalid(BAD_LINK));
        };
        users::set_email(&mut work, user.id, &new_email, now())
            .await
            .on_constraint(constraints::USERS_EMAIL, || ServiceError::invalid(EMAIL_TAKEN))?;
        work.changed(Change::User(user.id));
        work.commit().await?;
        Ok(())
    }

    /// Send the sign-up confirmation link again (a new one; the old one stops working).
    pub async fn resend_confirmation(&self, user: &User) -> ServiceResult<()> {
        if user.is_confirmed {
            return Err(ServiceError::invalid("Registration already has been confirmed."));
        }
        let confirmation = new_token();
        let mut work = self.store.begin().await?;
        users::set_confirmation_token(&mut work, user.id, &token_hash(&confirmation), now()).await?;
        let link = self.settings.frontend.link("confirm", &[("id", &user.encrypted_id), ("token", &confirmation)]);
        queue_mail(
            &mut work,
            &self.sealer,
            Some(user.id),
            &user.email,
            mail::signup_confirmation(&user.first_name, &link),
        )
        .await?;
        work.commit().await?;
        Ok(())
    }
}
