//! Housekeeping jobs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Job, JobContext, JobError};
use crate::services::{Priority, Task};

/// Housekeeping: expired tokens and ended rate-limit windows.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Cleanup {}

impl Task for Cleanup {
    const KIND: &'static str = "cleanup";
    const PRIORITY: Priority = Priority::Batch;
}

impl Job for Cleanup {
    const EVERY: Option<Duration> = Some(Duration::from_secs(3600));

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let removed = ctx.services.remove_expired_tokens().await?;
        tracing::info!(removed, "expired tokens removed");
        let removed = ctx.services.remove_ended_rate_windows().await?;
        tracing::info!(removed, "ended rate-limit windows removed");
        Ok(())
    }
}
