//! Mail leaves through the outbox: stored in the transaction of the change that causes it and
//! delivered by a job, so a message is never lost to a relay that is down.

use std::time::Duration;

use donkies_store::outbox::{self, Mail};
use donkies_store::{StoreError, new_id, now};

use super::{Services, Work};
use crate::crypto::Sealer;
use crate::jobs::mail::SendMail;
use crate::mail::Rendered;

/// Store `message` for `to` in the outbox and enqueue its delivery, both inside `work`. The
/// bodies (which carry sign-in and reset links) are sealed at rest and dropped once delivered.
pub async fn queue_mail(
    work: &mut Work,
    sealer: &Sealer,
    user_id: Option<i64>,
    to: &str,
    message: Rendered,
) -> Result<(), StoreError> {
    let mail = Mail {
        id: new_id(),
        user_id,
        template: message.template.to_owned(),
        to_address: to.to_owned(),
        subject: message.subject,
        text_body: sealer.seal(&message.text),
        html_body: sealer.seal(&message.html),
        created_at: now(),
        sent_at: None,
    };
    outbox::insert(work, &mail).await?;
    work.enqueue(&SendMail { outbox_id: mail.id }, Duration::ZERO).await
}

impl Services {
    /// Record that the outbox message went out (its bodies are dropped).
    pub async fn mark_mail_sent(&self, outbox_id: i64) -> Result<(), StoreError> {
        let mut work = self.begin().await?;
        outbox::mark_sent(&mut work, outbox_id, now()).await?;
        work.commit().await
    }

    /// Remove expired sessions and spent or expired action tokens; how many.
    pub async fn remove_expired_tokens(&self) -> Result<u64, StoreError> {
        let mut work = self.begin().await?;
        let removed = donkies_store::tokens::delete_expired(&mut work, now()).await?;
        work.commit().await?;
        Ok(removed)
    }

    /// Remove the rate-limit windows that have ended; how many.
    pub async fn remove_ended_rate_windows(&self) -> Result<u64, StoreError> {
        let mut work = self.begin().await?;
        let removed = donkies_store::rate_limits::delete_ended(&mut work, now()).await?;
        work.commit().await?;
        Ok(removed)
    }
}
