//! Jobs of the payment rail: Dwolla customers, funding sources, transfers and events.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Job, JobContext, JobError};
use crate::services::{Priority, Task};

/// Create the customer at Dwolla.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateDwollaCustomer {
    pub customer_id: i64,
}

impl Task for CreateDwollaCustomer {
    const KIND: &'static str = "create_dwolla_customer";
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.customer_id))
    }
}

impl Job for CreateDwollaCustomer {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.payments.create_dwolla_customer(self.customer_id).await?)
    }
}

/// Create a bank funding source at Dwolla and start its micro-deposits.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateDwollaFundingSource {
    pub funding_source_id: i64,
}

impl Task for CreateDwollaFundingSource {
    const KIND: &'static str = "create_dwolla_funding_source";
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.funding_source_id))
    }
}

impl Job for CreateDwollaFundingSource {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.payments.create_dwolla_funding_source(self.funding_source_id).await?)
    }
}

/// Create a transfer at Dwolla (exactly once, by its idempotency key).
#[derive(Debug, Serialize, Deserialize)]
pub struct SendTransfer {
    pub transfer_id: i64,
}

impl Task for SendTransfer {
    const KIND: &'static str = "send_transfer";
    const PRIORITY: Priority = Priority::Batch;
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.transfer_id))
    }
}

impl Job for SendTransfer {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.payments.send_transfer(self.transfer_id).await?)
    }
}

/// Apply a Dwolla event (received by webhook) to what it is about.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplyDwollaEvent {
    pub event_id: String,
    pub topic: String,
    pub resource_id: String,
}

impl Task for ApplyDwollaEvent {
    const KIND: &'static str = "apply_dwolla_event";
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.event_id))
    }
}

impl Job for ApplyDwollaEvent {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx
            .services
            .payments
            .apply_dwolla_event(&donkies_dwolla::Topic::parse(&self.topic), &self.resource_id)
            .await?)
    }
}

/// Subscribe Dwolla's webhooks to `url` unless already subscribed.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnsureWebhookSubscription {
    pub url: String,
}

impl Task for EnsureWebhookSubscription {
    const KIND: &'static str = "ensure_dwolla_webhook";
    const PRIORITY: Priority = Priority::Batch;
    fn dedupe_key(&self) -> Option<String> {
        Some(Self::KIND.to_owned())
    }
}

impl Job for EnsureWebhookSubscription {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.payments.ensure_webhook_subscription(&self.url).await?)
    }
}

/// Periodic: the backup for lost webhooks — customers not yet settled and transfers in flight
/// are read from Dwolla.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PollPayments {}

impl Task for PollPayments {
    const KIND: &'static str = "poll_payments";
    const PRIORITY: Priority = Priority::Batch;
}

impl Job for PollPayments {
    const EVERY: Option<Duration> = Some(Duration::from_secs(300));

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        Ok(ctx.services.payments.poll_payments().await?)
    }
}
