//! Mail delivery: the job that sends one outbox message.

use donkies_store::outbox;
use serde::{Deserialize, Serialize};

use super::{Job, JobContext, JobError};
use crate::services::Task;

/// Deliver one outbox message.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendMail {
    pub outbox_id: i64,
}

impl Task for SendMail {
    const KIND: &'static str = "send_mail";
}

impl Job for SendMail {
    /// Deliver the outbox message unless it already went out; a relay that refuses is tried
    /// again later.
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let db = &ctx.services.store.db;
        let Some(mail) = outbox::get(db, self.outbox_id).await? else {
            tracing::warn!(outbox_id = %self.outbox_id, "outbox message vanished; nothing to send");
            return Ok(());
        };
        if mail.sent_at.is_some() {
            return Ok(());
        }
        let sealer = &ctx.services.sealer;
        // Mail queued before bodies were sealed is plain text.
        let open = |body: &str| sealer.open(body).unwrap_or_else(|| body.to_owned());
        let readable =
            outbox::Mail { text_body: open(&mail.text_body), html_body: open(&mail.html_body), ..mail.clone() };
        ctx.mailer.deliver(&readable).await.map_err(JobError::retry)?;
        ctx.services.mark_mail_sent(self.outbox_id).await?;
        tracing::info!(outbox_id = %self.outbox_id, template = %mail.template, "mail delivered");
        Ok(())
    }
}
