//! How each kind of job runs, and which run by the clock.

use std::time::Duration;

use donkies_store::outbox;
use serde::{Deserialize, Serialize};

use super::{Job, JobContext, JobError, Registry};
use crate::services::Task;
use crate::services::banking::{
    BackfillAggregatorUsers, CreateAggregatorUser, PollMember, ResyncMembers, SyncInstitutions, SyncMemberTransactions,
};
use crate::services::money::{CollectRoundUps, FinalPayout, RunPayouts};
use crate::services::outbox::SendMail;
use crate::services::payments::{
    ApplyDwollaEvent, CreateDwollaCustomer, CreateDwollaFundingSource, EnsureWebhookSubscription, PollPayments,
    SendTransfer,
};

/// Housekeeping: expired tokens.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Cleanup {}

impl Task for Cleanup {
    const KIND: &'static str = "cleanup";
}

/// Work scheduled by the clock: (job kind, period).
pub const PERIODIC: &[(&str, Duration)] = &[
    (Cleanup::KIND, Duration::from_secs(3600)),
    (ResyncMembers::KIND, Duration::from_secs(3600)),
    (SyncInstitutions::KIND, Duration::from_secs(6 * 3600)),
    (BackfillAggregatorUsers::KIND, Duration::from_secs(6 * 3600)),
    (PollPayments::KIND, Duration::from_secs(300)),
    (CollectRoundUps::KIND, Duration::from_secs(3600)),
    (RunPayouts::KIND, Duration::from_secs(3600)),
];

pub(super) fn register_all(r: &mut Registry) {
    r.register::<SendMail>()
        .register::<Cleanup>()
        .register::<CreateAggregatorUser>()
        .register::<BackfillAggregatorUsers>()
        .register::<SyncInstitutions>()
        .register::<PollMember>()
        .register::<SyncMemberTransactions>()
        .register::<ResyncMembers>()
        .register::<CreateDwollaCustomer>()
        .register::<CreateDwollaFundingSource>()
        .register::<SendTransfer>()
        .register::<ApplyDwollaEvent>()
        .register::<EnsureWebhookSubscription>()
        .register::<PollPayments>()
        .register::<CollectRoundUps>()
        .register::<RunPayouts>()
        .register::<FinalPayout>();
}

impl Job for SendMail {
    /// Deliver the outbox message unless it already went out; a relay that refuses is tried
    /// again later.
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let db = &ctx.services.db;
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

impl Job for Cleanup {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let removed = ctx.services.remove_expired_tokens().await?;
        tracing::info!(removed, "expired tokens removed");
        Ok(())
    }
}

impl Job for CreateAggregatorUser {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        ctx.services.ensure_aggregator_user(self.user_id).await?;
        Ok(())
    }
}

impl Job for BackfillAggregatorUsers {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.backfill_aggregator_users().await?)
    }
}

impl Job for SyncInstitutions {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let n = ctx.services.sync_institutions().await?;
        tracing::info!(institutions = n, "institution catalog synced");
        Ok(())
    }
}

impl Job for PollMember {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.poll_member(self.member_id, self.generation).await?)
    }

    /// Polling gave up: the member shows OTHER_ERROR instead of PROCESSING for ever.
    async fn parked(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.give_up_polling(self.member_id, self.generation).await?)
    }
}

impl Job for SyncMemberTransactions {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.sync_member_transactions(self.member_id).await?)
    }
}

impl Job for ResyncMembers {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.resync_members().await?)
    }
}

impl Job for CreateDwollaCustomer {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.create_dwolla_customer(self.customer_id).await?)
    }
}

impl Job for CreateDwollaFundingSource {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.create_dwolla_funding_source(self.funding_source_id).await?)
    }
}

impl Job for SendTransfer {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.send_transfer(self.transfer_id).await?)
    }
}

impl Job for ApplyDwollaEvent {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.apply_dwolla_event(&donkies_dwolla::Topic::parse(&self.topic), &self.resource_id).await?)
    }
}

impl Job for EnsureWebhookSubscription {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.ensure_webhook_subscription(&self.url).await?)
    }
}

impl Job for PollPayments {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.poll_payments().await?)
    }
}

impl Job for CollectRoundUps {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let outcomes = ctx.services.collect_all(false, |_, _| {}).await?;
        let sent = outcomes.iter().filter(|(_, o)| matches!(o, crate::services::money::Collected::Sent { .. })).count();
        tracing::info!(users = outcomes.len(), sent, "collection run");
        Ok(())
    }
}

impl Job for RunPayouts {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.scheduled_payouts().await?)
    }
}

impl Job for FinalPayout {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.final_payout(self.user_id).await?)
    }
}
