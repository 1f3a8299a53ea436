//! Jobs that move money: collections, payouts, the final payout of a closed account.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Job, JobContext, JobError};
use crate::services::{Priority, Task};

/// The periodic collection run.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CollectRoundUps {}

impl Task for CollectRoundUps {
    const KIND: &'static str = "collect_roundups";
    const PRIORITY: Priority = Priority::Batch;
    fn dedupe_key(&self) -> Option<String> {
        Some(Self::KIND.to_owned())
    }
}

impl Job for CollectRoundUps {
    const EVERY: Option<Duration> = Some(Duration::from_secs(3600));

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let batches = ctx.services.money.plan_collection().await?;
        tracing::info!(batches, "collection run planned");
        Ok(())
    }
}

/// One batch of the collection run: these users, in one transaction.
#[derive(Debug, Serialize, Deserialize)]
pub struct CollectBatch {
    pub user_ids: Vec<i64>,
}

impl Task for CollectBatch {
    const KIND: &'static str = "collect_batch";
    const PRIORITY: Priority = Priority::Batch;
    fn dedupe_key(&self) -> Option<String> {
        self.user_ids.first().map(|first| format!("{}:{first}", Self::KIND))
    }
}

impl Job for CollectBatch {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let outcomes = ctx.services.money.collect_batch(&self.user_ids).await?;
        let sent = outcomes.iter().filter(|(_, o)| matches!(o, crate::services::money::Collected::Sent { .. })).count();
        tracing::info!(users = outcomes.len(), sent, "collection batch");
        Ok(())
    }
}

/// The periodic payout check: on the payout day, pays out every user's held money.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RunPayouts {}

impl Task for RunPayouts {
    const KIND: &'static str = "run_payouts";
    const PRIORITY: Priority = Priority::Batch;
    fn dedupe_key(&self) -> Option<String> {
        Some(Self::KIND.to_owned())
    }
}

impl Job for RunPayouts {
    const EVERY: Option<Duration> = Some(Duration::from_secs(3600));

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.money.scheduled_payouts().await?)
    }
}

/// One batch of the payout run of `day`: these users, in one transaction.
#[derive(Debug, Serialize, Deserialize)]
pub struct PayoutBatch {
    pub user_ids: Vec<i64>,
    pub day: chrono::NaiveDate,
}

impl Task for PayoutBatch {
    const KIND: &'static str = "payout_batch";
    const PRIORITY: Priority = Priority::Batch;
    fn dedupe_key(&self) -> Option<String> {
        self.user_ids.first().map(|first| format!("{}:{}:{first}", Self::KIND, self.day))
    }
}

impl Job for PayoutBatch {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let outcomes = ctx.services.money.payout_run_batch(&self.user_ids, self.day).await?;
        let paid = outcomes.iter().filter(|(_, o)| matches!(o, crate::services::money::PaidOut::Sent { .. })).count();
        tracing::info!(users = outcomes.len(), paid, day = %self.day, "payout batch");
        Ok(())
    }
}

/// Pay out everything a closed account holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct FinalPayout {
    pub user_id: i64,
}

impl Task for FinalPayout {
    const KIND: &'static str = "final_payout";
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("final_payout:{}", self.user_id))
    }
}

impl Job for FinalPayout {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.money.final_payout(self.user_id).await?)
    }
}
