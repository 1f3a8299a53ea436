//! Jobs of the bank aggregator: aggregator users, the institution catalog, members and
//! their transactions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Job, JobContext, JobError};
use crate::services::{Priority, Task};

/// Create the user at the aggregator.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateAggregatorUser {
    pub user_id: i64,
}

impl Task for CreateAggregatorUser {
    const KIND: &'static str = "create_aggregator_user";
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.user_id))
    }
}

impl Job for CreateAggregatorUser {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        ctx.services.banking.ensure_aggregator_user(self.user_id).await?;
        Ok(())
    }
}

/// Periodic: create aggregator users for everyone who has none.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BackfillAggregatorUsers {}

impl Task for BackfillAggregatorUsers {
    const KIND: &'static str = "backfill_aggregator_users";
    const PRIORITY: Priority = Priority::Batch;
}

impl Job for BackfillAggregatorUsers {
    const EVERY: Option<Duration> = Some(Duration::from_secs(6 * 3600));

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.banking.backfill_aggregator_users().await?)
    }
}

/// Periodic (and at start-up): refresh the institution catalog and credentials.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SyncInstitutions {}

impl Task for SyncInstitutions {
    const KIND: &'static str = "sync_institutions";
    const PRIORITY: Priority = Priority::Batch;
}

impl Job for SyncInstitutions {
    const EVERY: Option<Duration> = Some(Duration::from_secs(6 * 3600));

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let n = ctx.services.banking.sync_institutions().await?;
        tracing::info!(institutions = n, "institution catalog synced");
        Ok(())
    }
}

/// One poll of a linking member; `generation` retires polls of an older round.
#[derive(Debug, Serialize, Deserialize)]
pub struct PollMember {
    pub member_id: i64,
    pub generation: i64,
}

impl Task for PollMember {
    const KIND: &'static str = "poll_member";
}

impl Job for PollMember {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.banking.poll_member(self.member_id, self.generation).await?)
    }

    /// Polling gave up: the member shows OTHER_ERROR instead of PROCESSING for ever.
    async fn parked(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.banking.give_up_polling(self.member_id, self.generation).await?)
    }
}

/// Pull a member's transactions (when they were not ready with its accounts).
#[derive(Debug, Serialize, Deserialize)]
pub struct SyncMemberTransactions {
    pub member_id: i64,
}

impl Task for SyncMemberTransactions {
    const KIND: &'static str = "sync_member_transactions";
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.member_id))
    }
}

impl Job for SyncMemberTransactions {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.banking.sync_member_transactions(self.member_id).await?)
    }
}

/// Refresh one member's accounts and transactions (the hourly re-sync fans out to these).
#[derive(Debug, Serialize, Deserialize)]
pub struct ResyncMember {
    pub member_id: i64,
}

impl Task for ResyncMember {
    const KIND: &'static str = "resync_member";
    // The hourly re-sync's share: batch work, behind what a person waits for.
    const PRIORITY: Priority = Priority::Batch;
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.member_id))
    }
}

impl Job for ResyncMember {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.banking.resync_member(self.member_id).await?)
    }
}

/// Periodic: refresh accounts and transactions of every completed member, one job each.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ResyncMembers {}

impl Task for ResyncMembers {
    const KIND: &'static str = "resync_members";
    const PRIORITY: Priority = Priority::Batch;
}

impl Job for ResyncMembers {
    const EVERY: Option<Duration> = Some(Duration::from_secs(3600));

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.banking.resync_members().await?)
    }
}
