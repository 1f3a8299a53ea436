//! The job worker: claims due jobs from the database, runs them, retries with exponential
//! backoff, parks them after the last attempt, and enqueues periodic work once per slot.

use std::sync::Arc;
use std::time::Duration;

use donkies_store::{Db, jobs, now};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::banking::{self, Banking};
use crate::config::Settings;
use crate::mail::{self, Mailer};

/// Housekeeping: expired tokens and old periodic slots.
pub const CLEANUP_JOB: &str = "cleanup";

/// Work scheduled by the clock: (job kind, period).
const PERIODIC: &[(&str, Duration)] = &[
    (CLEANUP_JOB, Duration::from_secs(3600)),
    (banking::RESYNC_MEMBERS_JOB, Duration::from_secs(3600)),
    (banking::SYNC_INSTITUTIONS_JOB, Duration::from_secs(6 * 3600)),
    (banking::BACKFILL_AGGREGATOR_USERS_JOB, Duration::from_secs(6 * 3600)),
];

/// What a worker needs to run any job.
#[derive(Clone)]
pub struct JobContext {
    pub db: Db,
    pub mailer: Mailer,
    pub settings: Arc<Settings>,
    pub banking: Banking,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done { id: String, kind: String },
    Retrying { id: String, kind: String, error: String },
    Parked { id: String, kind: String, error: String },
}

impl Outcome {
    pub fn kind(&self) -> &str {
        match self {
            Outcome::Done { kind, .. } | Outcome::Retrying { kind, .. } | Outcome::Parked { kind, .. } => kind,
        }
    }
}

pub struct Worker {
    ctx: JobContext,
    name: String,
    wake: Arc<Notify>,
}

impl Worker {
    pub fn new(ctx: JobContext, wake: Arc<Notify>) -> Worker {
        let name = format!("{}-{}", hostname(), &donkies_store::new_id()[20..]);
        Worker { ctx, name, wake }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Claim and run one due job, if there is one.
    pub async fn run_next(&self) -> anyhow::Result<Option<Outcome>> {
        let t = now();
        let lease_until = t + chrono::Duration::from_std(self.ctx.settings.job_lease)?;
        let Some(job) = jobs::claim(&self.ctx.db, &self.name, t, lease_until).await? else {
            return Ok(None);
        };
        let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap_or_default();
        let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempts);
        let result = self.dispatch(&job.kind, &payload);
        let result = tracing::Instrument::instrument(result, span).await;
        let (id, kind) = (job.id.clone(), job.kind.clone());
        match result {
            Ok(()) => {
                jobs::complete(&self.ctx.db, &job.id, &self.name).await?;
                Ok(Some(Outcome::Done { id, kind }))
            }
            Err(err) => {
                let error = format!("{err:#}");
                if job.attempts >= job.max_attempts {
                    tracing::error!(job = %job.id, kind = %job.kind, attempts = job.attempts, %error, "job failed for the last time; parked");
                    jobs::fail(&self.ctx.db, &job.id, &self.name, &error, None, now()).await?;
                    Ok(Some(Outcome::Parked { id, kind, error }))
                } else {
                    let delay = backoff(self.ctx.settings.job_retry_base, job.attempts);
                    tracing::warn!(job = %job.id, kind = %job.kind, attempts = job.attempts, retry_in_ms = delay.as_millis() as u64, %error, "job failed; will retry");
                    let retry_at = now() + chrono::Duration::from_std(delay)?;
                    jobs::fail(&self.ctx.db, &job.id, &self.name, &error, Some(retry_at), now()).await?;
                    Ok(Some(Outcome::Retrying { id, kind, error }))
                }
            }
        }
    }

    async fn dispatch(&self, kind: &str, payload: &serde_json::Value) -> anyhow::Result<()> {
        match kind {
            mail::SEND_MAIL_JOB => mail::run_send_mail(&self.ctx.db, &self.ctx.mailer, payload).await,
            CLEANUP_JOB => cleanup(&self.ctx.db).await,
            banking::CREATE_AGGREGATOR_USER_JOB => {
                let user_id = payload_str(payload, "user_id")?;
                self.ctx.banking.ensure_aggregator_user(user_id).await.map(|_| ()).map_err(|e| anyhow::anyhow!("{e:#}"))
            }
            banking::BACKFILL_AGGREGATOR_USERS_JOB => self.ctx.banking.backfill_aggregator_users().await,
            banking::SYNC_INSTITUTIONS_JOB => {
                let n = self.ctx.banking.sync_institutions().await?;
                tracing::info!(institutions = n, "institution catalog synced");
                Ok(())
            }
            banking::POLL_MEMBER_JOB => {
                let member_id = payload_str(payload, "member_id")?;
                let generation = payload.get("generation").and_then(|g| g.as_i64()).unwrap_or_default();
                self.ctx.banking.poll_member(member_id, generation).await
            }
            banking::SYNC_TRANSACTIONS_JOB => {
                self.ctx.banking.sync_member_transactions(payload_str(payload, "member_id")?).await
            }
            banking::RESYNC_MEMBERS_JOB => self.ctx.banking.resync_members().await,
            other => anyhow::bail!("unknown job kind {other:?}"),
        }
    }

    /// Enqueue each periodic job for the current slot unless another worker already has.
    pub async fn schedule_periodic(&self) -> anyhow::Result<()> {
        let kinds: Vec<&'static str> = PERIODIC.iter().map(|(kind, _)| *kind).collect();
        schedule_periodic(&self.ctx, &kinds).await.map(|_| ())
    }

    /// Run jobs until `shutdown` fires; the job in progress is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.name, "job worker started");
        let mut last_schedule: Option<tokio::time::Instant> = None;
        while !shutdown.is_cancelled() {
            if last_schedule.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
                if let Err(err) = self.schedule_periodic().await {
                    tracing::warn!(error = %format!("{err:#}"), "could not schedule periodic jobs");
                }
                last_schedule = Some(tokio::time::Instant::now());
            }
            match self.run_next().await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %format!("{err:#}"), "job queue unavailable"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.ctx.settings.job_poll) => {}
            }
        }
        tracing::info!(worker = %self.name, "job worker stopped");
    }
}

/// Enqueue each of `kinds` (periodic job kinds) for the current time slot unless some worker
/// already did; returns the kinds whose slot was already taken.
pub async fn schedule_periodic(ctx: &JobContext, kinds: &[&'static str]) -> anyhow::Result<Vec<&'static str>> {
    let t = now();
    let mut taken = Vec::new();
    for &kind in kinds {
        let Some((_, period)) = PERIODIC.iter().find(|(k, _)| *k == kind) else {
            anyhow::bail!("{kind} is not a periodic job");
        };
        let slot = t.timestamp() / period.as_secs() as i64;
        if !jobs::enqueue_periodic(&ctx.db, kind, slot, ctx.settings.job_max_attempts, t).await? {
            taken.push(kind);
        }
    }
    Ok(taken)
}

/// Delay before retry number `attempts` (1-based): base · 2^(attempts−1), at most one hour.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base.saturating_mul(2u32.saturating_pow(exp)).min(Duration::from_secs(3600))
}

async fn cleanup(db: &Db) -> anyhow::Result<()> {
    let removed = donkies_store::tokens::delete_expired(db, now()).await?;
    tracing::info!(removed, "expired tokens removed");
    Ok(())
}

fn payload_str<'a>(payload: &'a serde_json::Value, key: &str) -> anyhow::Result<&'a str> {
    payload.get(key).and_then(|v| v.as_str()).ok_or_else(|| anyhow::anyhow!("job payload without {key}"))
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 4), Duration::from_secs(16));
        assert_eq!(backoff(base, 40), Duration::from_secs(3600));
    }
}
